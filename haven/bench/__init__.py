"""``haven bench``: speed measured as ratios against baselines taken in the same run."""
