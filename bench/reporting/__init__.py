"""From bench rows to what a reader sees: the ratios against the teacher (``derive``), report.md
(``report``) with its trust sections (``trust``), and how far two runs agree (``compare``)."""
