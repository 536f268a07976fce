"""Hot reload: watch the files, check a candidate config, plan the change, then apply it
(wiring.py) or keep the running one."""
