"""Templates of the stage scripts (`@@{name}` placeholders, values shell-quoted when rendered).
`glm5_hpc render --profile P` prints what they become for a profile."""
