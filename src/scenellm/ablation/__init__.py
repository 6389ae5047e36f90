"""``scenellm ablate``: a grid of variants × seeds, each cell a pipeline run reusing shared
stages by fingerprint, and a paper-style table of each variant's difference from the full
model with 95 % paired video-bootstrap intervals."""
