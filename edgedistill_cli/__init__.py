"""The top floor: the ``edgedistill`` command and ``edgedistill run``.

Every stage package (``distill``, ``export``, ``bench``, ``dashboard``) and the ground floor
(``edgedistill``) sit below this package and never import it (``.importlinter`` holds them to
that). ``python -m edgedistill_cli`` is the command for launchers that take a module
(``accelerate launch -m edgedistill_cli train RECIPE``).
"""
