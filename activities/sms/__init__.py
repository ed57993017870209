"""SMS and WhatsApp: the texts (rendering, segments) and sending them through Twilio."""
