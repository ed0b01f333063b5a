"""Side-by-side benchmarks of dicom-node against DCMTK ``storescp`` and Orthanc.

Run ``python -m bench.run`` (see ``bench/README.md``).  The suite is a measuring instrument:
every figure is taken for us and for the peers in the same run, from the outside (DCMTK
``storescu``/``findscu``/``movescu`` as the clients, ``node-ctl serve`` as a real process),
so that a ratio means the same thing on any machine.
"""
