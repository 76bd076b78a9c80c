# reference: excepthook
raise SystemExit("fatal: configuration missing")
