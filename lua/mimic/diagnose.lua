-- mimic.diagnose: placeholder while it is written (see below).
return {}
