"""City vital signs (城市体征) and early warning (预测预警).

- :mod:`ops.signs.settings`: the ``[[indicators]]`` / ``[[rules]]`` section (``parse_ops_settings``);
  indicators are declared in :mod:`~ops.signs.indicator_spec`, both share :mod:`~ops.signs.kit`;
- :mod:`ops.signs.rules`: the rule kinds, one class each, in the ``RULE_KINDS`` registry;
- :mod:`ops.signs.rows`: the rows both read from the city store;
- :mod:`ops.signs.indicators` and :mod:`~ops.signs.forecast`: indicator values and forecasts;
- :mod:`ops.signs.alerts`: the alert book (raise, update, clear, acknowledge);
- :mod:`ops.signs.service`: :class:`~ops.signs.service.VitalSigns`, all of it for one city.
"""
