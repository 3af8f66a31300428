"""The `billy` command: the application layer that assembles billy_core, the consumers,
the relay and the periodic jobs into roles (`billy.roles`) and serves them from a CLI
(`billy.cli`). Nothing below this package imports it."""
