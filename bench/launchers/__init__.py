"""Where and how bench jobs run: one process per job on this machine (``process``, each job in
``worker``), a bundle on every target of a Dask cluster (``fleet``), and a CUDA machine under a
deadline (``gpu``)."""
