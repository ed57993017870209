"""Push notifications: rendering (title, body, link per step and locale) and FCM delivery."""
