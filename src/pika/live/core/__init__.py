"""The room as a core without I/O: `decide(state, command, now) -> (state, effects)`.

Commands (commands.py) go in one at a time with `now` from the live path's one clock; what
comes out is the room's next state and the effects (effects.py) an async shell carries out:
SQL to commit, frames for an audience, timers to set, refusals.  Nothing here awaits or reads a clock.
"""
