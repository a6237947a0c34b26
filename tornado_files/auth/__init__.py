"""Access control: who is asking (``authenticator``), and what they may do (``rules``)."""
