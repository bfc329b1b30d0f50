"""Static data shipped with the portal (reference tables, demo names)."""
