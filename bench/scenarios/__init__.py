"""What one bench job measures, given a loaded runtime: latency at batch 1 and at fixed lengths
(``latency``, through pytest-benchmark), throughput over a whole split in length buckets
(``throughput``), the paired references and headline candidates in one process (``paired``), peak
memory (``memory``), FLOPs against the machine's measured peak (``roofline``) and the machine's own
speed at that moment (``probe``). The backends themselves are ``edgedistill.runtime``'s."""
