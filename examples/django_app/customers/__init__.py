"""The one app: customer records, each view declared for zerotrust."""
