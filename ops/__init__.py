"""Operations: the event pipeline (:mod:`ops.events`) and the city's vital signs (:mod:`ops.signs`)."""
