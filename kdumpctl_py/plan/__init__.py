"""Pure planners: functions of a SystemView that say what to reserve, build and load."""
