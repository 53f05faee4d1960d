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
# element ids and attributes tests and wall scripts rely on
MAP_COUNT = "map-count"  # data-count, data-drawn, data-mode, data-res
PROFILE_CELL_ID = "profile-cell-id"
AREA_NAME = "area-name"
#: Profile values carry data-metric="<metric name>".
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

# operations panel (callbacks/ops.py): tabs, events, sign-in
PANEL_TABS = "tabs-panel"
OPS_FINGERPRINT = "store-ops-fingerprint"  # cheap digest of events/alerts: changes redraw
OPS_CHANGED = "store-ops-changed"  # bumped by an operator action: refresh at once
SESSION_USER = "store-session-user"  # who is signed in, for display only (server re-checks)
SELECTED_EVENT = "store-selected-event"
QUEUE_FILTER = "store-queue-filter"  # department whose queue the event list shows
DETAIL_KEY = "store-event-detail-key"  # what the detail pane shows (skip identical redraws)
CELL_EVENTS = "panel-cell-events"
EVENTS_PANEL = "panel-events"
EVENTS_STATS = "events-stats"
EVENTS_QUEUES = "events-queues"
EVENTS_LIST = "events-list"
EVENT_DETAIL = "event-detail"
EVENT_MESSAGE = "event-message"
LOGIN_FORM = "login-form"
LOGIN_NAME = "input-login-name"
LOGIN_PASSWORD = "input-login-password"
LOGIN_BUTTON = "button-login"
LOGOUT_BUTTON = "button-logout"
LOGIN_STATUS = "login-status"
EVENT_PICK = "event-pick"  # pattern: {"type": EVENT_PICK, "list": <list name>, "event": <id>}
QUEUE_PICK = "queue-pick"  # pattern: {"type": QUEUE_PICK, "department": <name>}
EVENT_ACTION = "event-action"  # pattern: {"type": ..., "event": <id>, "to": <status>, "version": <n>}
EVENT_DEPARTMENT = "event-department"  # pattern: {"type": ..., "event": <id>}
EVENT_NOTE = "event-note"  # pattern: {"type": ..., "event": <id>}
SIGNS_PANEL = "panel-signs"
ALERTS_PANEL = "panel-alerts"
ALERT_ACK = "alert-ack"  # pattern: {"type": ALERT_ACK, "alert": <id>}
ALERT_MESSAGE = "alert-message"
