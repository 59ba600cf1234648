"""What a snapshot says about the cluster, measured from its record and its root: its
time and N (``summary``), and the numbers users follow over a run (``observables``:
kira's own root entries, star and multiple counts, bound systems).  Knows no database."""
