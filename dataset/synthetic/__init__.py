"""The synthetic cube↔sphere family (docs/dataset.md): ``geometry`` (the shapes), ``render`` (Mitsuba scenes),
``instance`` (one instance folder), ``training_sets`` (splits and the 16 training sets), ``build`` (the resumable
build, ``python -m dataset.synthetic``) and ``dataset`` (the torch dataset read by training and DS)."""
