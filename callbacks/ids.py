"""Component ids, in one place so that layout, callbacks and browser tests agree."""

from __future__ import annotations

# stores (per-user state lives in the browser, never in module globals)
LANGUAGE = "store-language"
THEME = "store-theme"
VIEW = "store-view"  # zoom/viewport that decide what is drawn (changes redraw)
CAMERA = "store-camera"  # the user's exact centre and zoom (kept, never redraws)
SELECTED_CELL = "store-selected-cell"
AREA = "store-area"
REVISION = "store-revision"
RENDERED = "store-rendered"  # what the browser's map holds (grid, structure, version)
REPLAY = "store-replay"  # time-slider playback: None when live

# header
ROOT = "root"
TITLE = "title"
SUBTITLE = "subtitle"
CLOCK = "clock"
LANGUAGE_BUTTON = "button-language"
THEME_BUTTON = "button-theme"

# controls
HEX_LAYER = "radio-hex-layer"
METRIC = "dropdown-metric"
OVERLAYS = "checklist-overlays"
OUTLINE = "dropdown-outline"
DISTRICT = "dropdown-district"
SUBAREA = "dropdown-subarea"
BACK_TO_CITY = "button-back-to-city"
LABELS = "label"  # pattern: {"type": LABELS, "key": <i18n key>}

# map and panels
MAP = "map"
MAP_STATUS = "map-status"
PROFILE = "panel-profile"
AREA_PANEL = "panel-area"
SOURCES = "panel-sources"
ATTRIBUTION = "attribution"
TICK = "interval-tick"
STALE_BANNER = "stale-banner"
LIVE_CHIP = "live-chip"

# time replay
HISTORY_SLIDER = "slider-history"
REPLAY_SPEED = "dropdown-replay-speed"
REPLAY_PLAY = "button-replay-play"
REPLAY_LIVE = "button-replay-live"

# exhibition tour and wall mode (?tour=1, ?wall=1)
URL = "url"
TOUR = "store-tour"
TOUR_TICK = "interval-tour"
TOUR_CAPTION = "tour-caption"
