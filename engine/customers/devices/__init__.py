"""DevicesService: the devices customers receive push notifications on."""
