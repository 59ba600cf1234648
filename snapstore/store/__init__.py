"""The event-sourced store: events, records, projections, backends, migrations."""
