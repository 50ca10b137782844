"""firmware_shim backends: sim, onvif, isapi."""
