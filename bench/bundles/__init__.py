"""The portable bench bundle: its format and verified reading (``spec``), writing one (``write``) and
the ``edgedistill bundle`` command (``cli``)."""
