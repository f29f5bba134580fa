from glm5_hpc.cli import main

raise SystemExit(main())
