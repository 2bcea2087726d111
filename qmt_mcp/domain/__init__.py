"""The pure domain: values, the status table, the rule book and risk rules. No I/O here."""
