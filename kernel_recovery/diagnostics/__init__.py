"""What the data determine and whether a fit fits: the determinacy report, post-fit checks, change tests, lag search."""
