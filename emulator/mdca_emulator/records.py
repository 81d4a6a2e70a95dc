"""Record bodies shaped like MDCA's, built from one 64-bit hash per record.

Every builder is a pure function of its arguments: the same hash always yields the same record, so two
emulators with the same seed serve byte-identical data. The shapes follow the facts file: the keys that
matter, nested objects, a ``Level``/``level`` pair differing only in case, non-ASCII text, alerts with zero to
many related entities whose ids are sometimes ints. Builders are on the hot path of scan-mode benchmarks, so
they pick from precomputed pools with bit arithmetic and build plain dict literals.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_mdca import json_codec
from mdca_emulator.services import check_table
from mdca_emulator.timing import AlertState

__all__ = ["FILE_APPS", "SHAPES", "RecordShape", "file_app", "iso_ms"]

_MASK64 = (1 << 64) - 1


def _mix(value: int) -> int:
    # The SplitMix64 finaliser (same as data.mix64, repeated to keep this module dependency-free).
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


# -- pools ---------------------------------------------------------------------------------------------------

_DOMAIN = "contoso.com"
_APPS: tuple[tuple[int, str], ...] = (
    (11161, "Microsoft Office 365"),
    (20893, "Microsoft SharePoint Online"),
    (15600, "Microsoft OneDrive for Business"),
    (20892, "Microsoft Exchange Online"),
    (28375, "Microsoft Teams"),
    (12260, "Microsoft Azure"),
    (11114, "Salesforce"),
    (11522, "Box"),
    (11770, "Google Workspace"),
    (10489, "Dropbox"),
)
# (eventType, eventTypeValue, label, action phrase)
_EVENTS: tuple[tuple[int, str, str, str], ...] = (
    (233580, "EVENT_CATEGORY_LOGIN", "Log on", "signed in to"),
    (233580, "EVENT_CATEGORY_LOGIN", "Log on", "signed in to"),
    (233581, "EVENT_CATEGORY_LOGOUT", "Log off", "signed out of"),
    (233582, "EVENT_CATEGORY_FAILED_LOGIN", "Failed log on", "failed to sign in to"),
    (233590, "EVENT_CATEGORY_DOWNLOAD_FILE", "Download file", "downloaded a file from"),
    (233591, "EVENT_CATEGORY_UPLOAD_FILE", "Upload file", "uploaded a file to"),
    (233592, "EVENT_CATEGORY_SHARE_FILE", "Share file", "shared a file in"),
    (233593, "EVENT_CATEGORY_DELETE_FILE", "Delete file", "deleted a file from"),
    (233600, "EVENT_CATEGORY_SEND_MAIL", "Send mail", "sent a message with"),
    (233610, "EVENT_CATEGORY_CHANGE_PASSWORD", "Change password", "changed a password in"),
)
_PEOPLE: tuple[tuple[str, str], ...] = (
    ("alice.martin", "Alice Martin"),
    ("chloe.dubois", "Chloé Dubois"),
    ("li.lei", "李雷 (Li Lei)"),
    ("zoe.muller", "Zoë Müller"),
    ("jurgen.schmidt", "Jürgen Schmidt"),
    ("soren.kierkegaard", "Søren Kierkegaard"),
    ("ana.goncalves", "Ana Gonçalves"),
    ("bob.smith", "Bob Smith"),
    ("hana.tanaka", "田中 花 (Hana Tanaka)"),
    ("omar.haddad", "Omar Haddad"),
    ("priya.sharma", "Priya Sharma"),
    ("renee.leclerc", "Renée Leclerc"),
    ("wang.fang", "王芳 (Wang Fang)"),
    ("svc.backup", "Backup service account"),
    ("admin", "Tenant administrator"),
    ("eve.external", "Eve (guest)"),
)
_USER_TAGS: tuple[tuple[str, ...], ...] = (
    (),
    ("5f01dbbc68df27c17aa6ca81",),
    ("5f01dbbc68df27c17aa6ca81", "5f759b4d106abbe4a504ea5d"),
    ("6036f9a4c3f4f2b8e3a1d001",),
)
# (countryCode, city, region, latitude, longitude, organisation)
_PLACES: tuple[tuple[str, str, str, float, float, str], ...] = (
    ("US", "Seattle", "Washington", 47.6062, -122.3321, "Microsoft Corporation"),
    ("FR", "Paris", "Île-de-France", 48.8566, 2.3522, "Orange S.A."),
    ("CN", "Beijing", "北京市", 39.9042, 116.4074, "China Telecom"),
    ("DE", "Berlin", "Berlin", 52.52, 13.405, "Deutsche Telekom AG"),
    ("JP", "Tokyo", "東京都", 35.6762, 139.6503, "NTT Communications"),
    ("BR", "São Paulo", "São Paulo", -23.5505, -46.6333, "Telefônica Brasil"),
    ("IN", "Bengaluru", "Karnataka", 12.9716, 77.5946, "Bharti Airtel"),
    ("GB", "London", "England", 51.5072, -0.1276, "British Telecommunications"),
    ("ES", "Madrid", "Comunidad de Madrid", 40.4168, -3.7038, "Telefónica de España"),
    ("AU", "Sydney", "New South Wales", -33.8688, 151.2093, "Telstra"),
)
_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "python-requests/2.31.0",
    "OneDriveMpc-Transform_Thumbnail/1.0",
)
_IP_PREFIXES: tuple[str, ...] = ("52.97", "20.190", "185.12", "91.198", "10.1", "172.16", "81.2", "104.47")
_FILES: tuple[tuple[str, str, int, str], ...] = (
    (
        "Q3 résumé.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        1,
        "DOCUMENT",
    ),
    (
        "季度报告-中文.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        2,
        "SPREADSHEET",
    ),
    (
        "naïve-roadmap.pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        3,
        "PRESENTATION",
    ),
    ("notes.txt", "text/plain", 4, "TEXT"),
    ("export.csv", "text/csv", 4, "TEXT"),
    ("diagram.png", "image/png", 5, "IMAGE"),
    ("contract-signé.pdf", "application/pdf", 1, "DOCUMENT"),
    ("backup.zip", "application/zip", 0, "OTHER"),
)
_RESULTS: tuple[str, ...] = ("Succeeded", "Succeeded", "Succeeded", "Failed", "PartiallySucceeded")
_LEVELS: tuple[tuple[int, str], ...] = (
    (4, "Informational"),
    (3, "Warning"),
    (2, "Error"),
    (4, "Informational"),
)
_ALERT_TITLES: tuple[tuple[str, str], ...] = (
    ("Impossible travel activity", "The user {user} signed in from {city} and another distant country."),
    ("Mass download by a single user", "{user} downloaded an unusually large number of files."),
    ("Activity from infrequent country", "{user} was active from {city}, a country seldom seen."),
    ("Suspicious inbox forwarding", "A forwarding rule to an external address was created by {user}."),
    ("Ransomware activity", "{user} uploaded files with an unusual extension — possible ransomware."),
    ("Unusual file share activity (by user)", "{user} shared files with many external collaborators."),
    ("Activité depuis une adresse IP anonyme", "Connexion de {user} via une adresse IP anonyme (中文测试)."),
)
_ENTITY_KINDS: tuple[str, ...] = (
    "account",
    "user",
    "service",
    "policyRule",
    "file",
    "device",
    "ip",
    "country",
    "domain",
    "groupTag",
)
# How many related entities an alert has: mostly a few, sometimes none, sometimes many (flatten's hard cases).
_ENTITY_COUNTS: tuple[int, ...] = (0, 1, 1, 2, 3, 3, 4, 2, 6, 9, 1, 7)
_SUBNET_SITES: tuple[str, ...] = (
    "Headquarters",
    "Paris office",
    "Datacenter",
    "VPN pool",
    "Guest Wi-Fi",
    "Zürich lab",
)
_FILE_KINDS: tuple[int, ...] = (1, 2, 3, 4, 5)
# Fixed reference instant for snapshot dates, so that snapshots do not change with the wall clock.
_SNAPSHOT_EPOCH = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)


def _person(bits: int) -> tuple[str, str, str]:
    alias, display = _PEOPLE[bits % len(_PEOPLE)]
    return alias, display, f"{alias}@{_DOMAIN}"


def _ip(bits: int) -> str:
    return f"{_IP_PREFIXES[bits % len(_IP_PREFIXES)]}.{(bits >> 3) & 255}.{1 + (bits >> 11) % 254}"


def _hex(bits: int, digits: int) -> str:
    return f"{bits & ((1 << (4 * digits)) - 1):0{digits}x}"


def _guid(bits: int) -> str:
    raw = f"{bits & _MASK64:016x}{_mix(bits):016x}"
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:32]}"


def _iso(seconds_before_epoch: int) -> str:
    moment = _SNAPSHOT_EPOCH - dt.timedelta(seconds=seconds_before_epoch)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- time-based services -------------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    """`text` as a JSON string literal, exactly as ``json.dumps(..., ensure_ascii=False)`` writes it."""
    return json.dumps(text, ensure_ascii=False)


def _escaped(text: str) -> str:
    """`text` JSON-escaped without the quotes, to splice into a larger literal."""
    return _quoted(text)[1:-1]


# Pre-serialised fragments for the activity template: per-record work is then one f-string.
_APP_JSON = tuple((f'"appId":{app_id},"appName":{_quoted(name)}', _escaped(name)) for app_id, name in _APPS)
_EVENT_JSON = tuple(
    (
        f'"eventType":{code},"eventTypeValue":"{value}"',
        _escaped(label),
        _escaped(phrase),
        value.endswith("FILE"),
    )
    for code, value, label, phrase in _EVENTS
)
_PEOPLE_JSON = tuple((f"{alias}@{_DOMAIN}", _quoted(display)) for alias, display in _PEOPLE)
_PLACES_JSON = tuple(
    (country, f'{{"countryCode":"{country}","city":{_quoted(city)},"region":{_quoted(region)}}}')
    for country, city, region, _lat, _lon, _org in _PLACES
)
_AGENTS_JSON = tuple(_quoted(agent) for agent in _AGENTS)
_TAGS_JSON = tuple(json.dumps(list(tags)).replace(" ", "") for tags in _USER_TAGS)
_LEVELS_JSON = tuple(f'"Level":{level},"level":"{name}"' for level, name in _LEVELS)
_FILES_ESCAPED = tuple(_escaped(name) for name, *_rest in _FILES)


def activity_json(h: int, _id: str, ts: int, created: int, _extra: Any = None) -> str:
    """An activity (``/api/v1/activities/``) as compact JSON text.

    The one source of truth for the activity shape: :func:`activity` parses this. Activities are the
    high-volume service (scan pages of 5,000 records), and formatting text directly is several times faster
    than building dicts for ``json.dumps``; the record is kept to the keys that matter for the same reason
    (a client's ``json.loads`` cost grows with every key).
    """
    app, app_name = _APP_JSON[h % 10]
    event, label, phrase, is_file = _EVENT_JSON[(h >> 4) % 10]
    upn, display = _PEOPLE_JSON[(h >> 8) % 16]
    country, place = _PLACES_JSON[(h >> 12) % 10]
    detail = f" « {_FILES_ESCAPED[(h >> 41) % 8]} »" if is_file else ""
    return (
        f'{{"_id":"{_id}","timestamp":{ts},"created":{created},{app},{event},'
        f'"description":"{label}: {display[1:-1]} {phrase} {app_name}{detail}",'
        f'"device":{{"clientIP":"{_ip(h >> 16)}","userAgent":{_AGENTS_JSON[(h >> 32) % 6]},'
        f'"countryCode":"{country}"}},"location":{place},'
        f'"user":{{"userName":"{upn}","userTags":{_TAGS_JSON[(h >> 44) % 4]}}},'
        f'"rawDataJson":{{{_LEVELS_JSON[(h >> 36) % 4]},"OperationName":"{label}",'
        f'"ResultStatus":"{_RESULTS[(h >> 38) % 5]}"}},'
        f'"entityData":{{"0":{{"displayName":{display},"id":"{upn}","resolved":true}}}}}}'
    )


def activity(h: int, _id: str, ts: int, created: int, _extra: Any = None) -> dict[str, Any]:
    """An activity as a dict (parsed from :func:`activity_json`)."""
    parsed: dict[str, Any] = json.loads(activity_json(h, _id, ts, created))
    return parsed


# Pre-serialised fragments for the alert template (alerts pages are 100 records, so the emulator's per-record cost
# is most of a page's round trip): per-record work is then a few table lookups and one f-string per entity.
_PERSON_ENTITY_JSON = tuple(
    f'"id":"{alias}@{_DOMAIN}","label":{_quoted(display)},"pa":"{alias}@{_DOMAIN}","inst":0,"saas":11161'
    for alias, display in _PEOPLE
)
_SERVICE_ENTITY_JSON = tuple(f'"id":{app_id},"label":{_quoted(name)}' for app_id, name in _APPS)
_FILE_ENTITY_JSON = tuple((f"|{_escaped(name)}", _quoted(name)) for name, *_rest in _FILES)
_COUNTRY_ENTITY_JSON = tuple(f'"id":"{country}","label":"{country}"' for country, *_rest in _PLACES)
_ALERT_TITLES_JSON = tuple(
    (
        _quoted(title),
        tuple(
            tuple(_quoted(template.format(user=display, city=place[1])) for place in _PLACES) for _a, display in _PEOPLE
        ),
    )
    for title, template in _ALERT_TITLES
)


def _alert_entity_json(bits: int, kind: str) -> str:
    """One related entity of an alert as compact JSON text (ids keep MDCA's types: int for services and groups)."""
    if kind in ("account", "user"):
        fields = _PERSON_ENTITY_JSON[bits % len(_PEOPLE)]
    elif kind == "service":
        fields = _SERVICE_ENTITY_JSON[bits % 10]
    elif kind == "policyRule":
        fields = f'"id":"{_hex(bits, 24)}","label":"Mass download","policyType":"ANOMALY"'
    elif kind == "file":
        name, label = _FILE_ENTITY_JSON[bits % 8]
        fields = f'"id":"{_hex(bits, 8)}{name}","label":{label}'
    elif kind == "device":
        fields = f'"id":"{_guid(bits)}","label":"LAPTOP-{bits % 9000 + 1000}"'
    elif kind == "ip":
        ip = _ip(bits)
        fields = f'"id":"{ip}","label":"{ip}"'
    elif kind == "country":
        fields = _COUNTRY_ENTITY_JSON[bits % 10]
    elif kind == "domain":
        fields = f'"id":"{_DOMAIN}","label":"{_DOMAIN}"'
    else:
        fields = f'"id":{bits % 100_000},"label":"Administrators"'
    return f'{{"type":"{kind}",{fields}}}'


def alert_json(h: int, _id: str, ts: int, created: int, state: AlertState | None = None) -> str:
    """An alert (``/api/v1/alerts/``) with 0..N related entities, as compact JSON text.

    The one source of truth for the alert shape: :func:`alert` parses this. `state` is what the alert shows now
    (realistic model: new, in progress, then resolved or dismissed, with ``resolveTime`` in epoch ms and
    ``handledByUser``); without it (instant model) the alert never changes and its status is drawn from its hash.
    """
    h2 = _mix(h)
    title, descriptions = _ALERT_TITLES_JSON[h % len(_ALERT_TITLES)]
    description = descriptions[(h >> 8) % len(_PEOPLE)][(h >> 12) % 10]
    entities = []
    bits = h2
    for position in range(_ENTITY_COUNTS[(h >> 16) % len(_ENTITY_COUNTS)]):
        # The first entities are the usual account/user/service; the rest are drawn from every kind.
        kind = _ENTITY_KINDS[position] if position < 3 else _ENTITY_KINDS[bits % len(_ENTITY_KINDS)]
        entities.append(_alert_entity_json(bits, kind))
        bits = _mix(bits)
    if state is None:  # the instant model: the alert never changes (the benchmarks' path, one f-string)
        status = (h >> 20) % 3
        return (
            f'{{"_id":"{_id}","contextId":"emulator","timestamp":{ts},"title":{title},"description":{description},'
            f'"severityValue":{(h >> 24) % 3},"statusValue":{status},'
            f'"resolutionStatusValue":{0 if status == 0 else 1 + (h >> 26) % 4},'
            f'"isSystemAlert":{"true" if (h >> 30) % 4 == 0 else "false"},"isPreview":false,'
            f'"threatScore":{(h2 >> 8) % 100},"entities":[{",".join(entities)}],"stories":[{(h >> 32) % 4}],'
            f'"URL":"https://emulator.portal.cloudappsecurity.com/#/alerts/{_id}"}}'
        )
    handler = "null" if state.handled_by is None else _quoted(state.handled_by)
    resolved = "null" if state.resolve_time is None else str(state.resolve_time)
    lifecycle = (
        f'"statusValue":{state.status},"resolutionStatusValue":{state.resolution},"resolveTime":{resolved},'
        f'"handledByUser":{handler},"comment":{_quoted(state.comment)},'
    )
    return (
        f'{{"_id":"{_id}","contextId":"emulator","timestamp":{ts},"title":{title},"description":{description},'
        f'"severityValue":{(h >> 24) % 3},{lifecycle}'
        f'"isSystemAlert":{"true" if (h >> 30) % 4 == 0 else "false"},"isPreview":false,'
        f'"threatScore":{(h2 >> 8) % 100},"entities":[{",".join(entities)}],"stories":[{(h >> 32) % 4}],'
        f'"URL":"https://emulator.portal.cloudappsecurity.com/#/alerts/{_id}"}}'
    )


def alert(h: int, _id: str, ts: int, created: int, state: AlertState | None = None) -> dict[str, Any]:
    """An alert as a dict (parsed from :func:`alert_json`)."""
    parsed: dict[str, Any] = json.loads(alert_json(h, _id, ts, created, state))
    return parsed


#: The cloud apps files come from (appId, name): MDCA scans each on its own schedule (``timing.py``).
FILE_APPS: tuple[tuple[int, str], ...] = (
    (15600, "Microsoft OneDrive for Business"),
    (20893, "Microsoft SharePoint Online"),
    (11522, "Box"),
    (11770, "Google Workspace"),
    (10489, "Dropbox"),
)


def file_app(h: int) -> int:
    """The position in :data:`FILE_APPS` of the app of the file whose hash is `h`."""
    return (h >> 52) % len(FILE_APPS)


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 text with milliseconds and ``Z``, as MDCA writes dates in records."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def file(h: int, _id: str, ts: int, created: int, _extra: Any = None) -> dict[str, Any]:
    """A file (``/api/v1/files/``).

    ``modifiedDate`` is the app's own time; ``snapshotLastModifiedDate`` (ISO 8601 text) is when MDCA updated its
    record of the file, at its scan of the app (``created``).
    """
    h2 = _mix(h)
    app_id, _app_name = FILE_APPS[file_app(h)]
    name, mime, kind, kind_name = _FILES[h % 8]
    alias, display, upn = _person(h >> 4)
    collaborators = []
    for position in range((h >> 12) % 4):
        _c_alias, c_display, c_upn = _person(h2 >> (8 * position))
        collaborators.append({"name": c_display, "email": c_upn, "type": 1, "role": 1 + position % 3})
    domains = [_DOMAIN] + (["fabrikam.com"] if (h >> 16) % 3 == 0 else [])
    return {
        "_id": _id,
        "id": _guid(h2),
        "saasId": app_id,
        "appId": app_id,
        "name": name,
        "fileSize": 512 + (h2 >> 20) % 50_000_000,
        "createdDate": ts - (h >> 20) % (90 * 86_400_000),
        "modifiedDate": ts,
        "snapshotLastModifiedDate": iso_ms(created),
        "ownerName": display,
        "ownerAddress": upn,
        "mimeType": mime,
        "fileType": [kind, kind_name],
        "sharing": (h >> 18) % 4,
        "isFolder": False,
        "collaborators": collaborators,
        "domains": domains,
        "alternateLink": f"https://contoso-my.sharepoint.com/personal/{alias}/Documents/{name}",
    }


# -- snapshot services ---------------------------------------------------------------------------------------


def entity(h: int, _id: str, index: int, seen: tuple[int, int] | None = None) -> dict[str, Any]:
    """An account entity (``/api/v1/entities/``); dates are ISO strings, as MDCA sends them.

    `seen`: (first, last) seen in epoch ms, for an entity that appeared in the collection at `first`; without it the
    dates are drawn from the hash before a fixed instant (a collection that never changes).
    """
    alias, display, _upn = _person(h)
    external = (h >> 8) % 7 == 0
    admin = (h >> 44) % 9 == 0
    domain = "fabrikam.com" if external else _DOMAIN
    email = f"{alias}{index}@{domain}"
    app_id, app_name = _APPS[(h >> 12) % 10]
    first_seen = 86_400 * 30 + (h >> 16) % (86_400 * 300)
    return {
        "_id": _id,
        "id": _guid(h),
        "type": 2 if (h >> 40) % 5 else 1,
        "displayName": f"{display} {index}",
        "email": email,
        "domain": domain,
        "isAdmin": admin,
        "isExternal": external,
        "isFake": False,
        "firstSeen": _iso(first_seen) if seen is None else iso_ms(seen[0]),
        "lastSeen": _iso((h >> 48) % first_seen) if seen is None else iso_ms(seen[1]),
        "threatScore": (h >> 52) % 100,
        "userGroups": [{"_id": _hex(h >> 4, 24), "name": "Office 365 administrator"}] if admin else [],
        "appData": {"appId": app_id, "name": app_name, "saas": app_id, "instance": 0},
    }


def subnet(h: int, _id: str, index: int, seen: tuple[int, int] | None = None) -> dict[str, Any]:
    """A subnet group (data_enrichment, ``/api/v1/subnet/``): names sort like ``_id``; ``lastModified`` is ms float.

    `seen`: (created, _) in epoch ms for a group added to the collection then, which is its ``lastModified``.
    """
    country, city, region, lat, lon, org = _PLACES[h % 10]
    second, third = 1 + index // 250 % 250, index % 250
    cidr = f"10.{second}.{third}.0/24"
    mapped = f"0000:0000:0000:0000:0000:ffff:0a{second:02x}:{third:02x}00"
    return {
        "_id": _id,
        "name": f"Subnet {index:05d} {_SUBNET_SITES[(h >> 8) % len(_SUBNET_SITES)]}",
        "subnets": [{"mask": 120, "address": mapped, "originalString": cidr}],
        "location": {
            "countryCode": country,
            "city": city,
            "region": region,
            "latitude": lat,
            "longitude": lon,
        },
        "organization": org,
        "tags": [{"id": _hex(h >> 16, 24), "name": "Corporate", "type": 0}] if (h >> 12) % 2 else [],
        "category": 1 + (h >> 20) % 6,
        "lastModified": float(1_700_000_000_000 + (h >> 24) % 40_000_000_000 if seen is None else seen[0]),
    }


def _dumps(obj: Any) -> str:
    # The text json.dumps(obj, separators=(",", ":"), ensure_ascii=False) writes, at a seventh of its cost: the
    # emulator builds every record it serves, so this is most of a page's CPU (tests/emulator checks the identity).
    return json_codec.encode(obj).decode()


Builder = Callable[..., dict[str, Any]]
Renderer = Callable[..., str]


@dataclass(frozen=True)
class RecordShape:
    """One service's record: as a dict (`build`) and as compact JSON text (`render`), always equal.

    Arguments of both: the record's 64-bit hash, its ``_id``, its timestamp (snapshots: its index), its
    ``created`` (snapshots: 0) and what changes with the clock, when the time model says it does (None otherwise): an
    alert's :class:`~mdca_emulator.timing.AlertState`, an entity's or subnet's (first, last) seen in epoch ms.
    """

    build: Builder
    render: Renderer


def _from_builder(build: Builder) -> RecordShape:
    return RecordShape(build, lambda h, _id, ts, created, extra=None: _dumps(build(h, _id, ts, created, extra)))


def _snapshot(build: Callable[[int, str, int, Any], dict[str, Any]]) -> RecordShape:
    return _from_builder(lambda h, _id, index, _created, extra=None: build(h, _id, index, extra))


#: Each service's record, by the registry's name: the one thing the emulator keeps per service. A windowed service's
#: record carries its timestamp in the registry's ``time_field``; a snapshot's is built from its index.
SHAPES: dict[str, RecordShape] = {
    "activities": RecordShape(activity, activity_json),
    "alerts": RecordShape(alert, alert_json),
    "data_enrichment": _snapshot(subnet),
    "entities": _snapshot(entity),
    "files": _from_builder(file),
}
check_table(SHAPES, "record shapes", complete=True)
