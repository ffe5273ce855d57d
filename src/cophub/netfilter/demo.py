"""Demo data for the network filter (`cophub demo`): settings, lists, groups and schedules of one school.

Safe to run again: what exists (by name) is left as it is; the lists are compiled and published each time.
The example lists under data/ hold made-up names under the reserved .test and .example suffixes.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path

from django.db import transaction

from . import services
from .models import Category, ClientGroup, ClientRange, FilterList, GroupKind, ListSource, ScheduleSlot

DATA = Path(__file__).resolve().parent / "data"
SCHOOL_DAYS = [0, 1, 2, 3, 4]
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]
GAMES_AND_SOCIAL = ["tiktok", "facebook", "instagram", "roblox", "freefire", "lienquan", "pubg", "minecraft", "discord", "youtube"]

LISTS = [
    # name, category, file, plain domains cover subdomains
    ("Danh sách mẫu: nội dung người lớn (demo)", Category.ADULT, "demo-adult.txt", False),
    ("Danh sách mẫu: cờ bạc (demo)", Category.GAMBLING, "demo-gambling.txt", True),
]

GROUPS = [
    # name, kind, grade, ranges, blocked categories, night block, school-hours block, priority
    ("Khối 6", GroupKind.PUPILS, 6, ["10.6.0.0/16"], [Category.ADULT, Category.GAMBLING], True, True, 10),
    ("Khối 9", GroupKind.PUPILS, 9, ["10.9.0.0/16"], [Category.ADULT, Category.GAMBLING], True, True, 10),
    ("Giáo viên", GroupKind.TEACHERS, None, ["10.20.0.0/16"], [Category.ADULT, Category.GAMBLING], False, False, 20),
    ("Khách", GroupKind.GUESTS, None, ["10.99.0.0/16"], [Category.ADULT, Category.GAMBLING, Category.MALWARE], False, False, 0),
]


def seed(unit, user=None) -> dict:
    """Make the demo's filter for `unit` (a school) and compile it; returns what was made."""
    made = {"lists": 0, "groups": 0}
    with transaction.atomic():
        row = services.settings_row()
        if not row.alert_categories:
            row.alert_enabled = True
            row.alert_categories = [Category.ADULT, Category.GAMBLING, Category.SELF_HARM]
            row.save(update_fields=["alert_enabled", "alert_categories"])
        services.ensure_hub_list(unit)
    for name, category, filename, subdomains in LISTS:
        if FilterList.objects.filter(name=name).exists():
            continue
        filter_list = FilterList.objects.create(unit=unit, name=name, category=category, source=ListSource.UPLOAD,
                                                match_subdomains=subdomains, created_by=user)
        services.import_upload(filter_list, (DATA / filename).read_bytes(), user)
        made["lists"] += 1
    with transaction.atomic():
        for name, kind, grade, ranges, categories, night, school_hours, priority in GROUPS:
            group, created = ClientGroup.objects.get_or_create(
                unit=unit, name=name,
                defaults={"kind": kind, "grade": grade, "categories": [str(c) for c in categories], "priority": priority,
                          "safe_search_youtube": "strict" if kind == GroupKind.PUPILS else "moderate"})
            if not created:
                continue
            made["groups"] += 1
            for cidr in ranges:
                ClientRange.objects.create(group=group, cidr=cidr, label=name)
            if night:
                ScheduleSlot.objects.create(group=group, label="Ban đêm", days=EVERY_DAY, start=time(22, 0), end=time(6, 0),
                                            block_all=True)
            if school_hours:
                ScheduleSlot.objects.create(group=group, label="Giờ học", days=SCHOOL_DAYS, start=time(7, 0), end=time(17, 0),
                                            services=GAMES_AND_SOCIAL, categories=[str(Category.GAMES), str(Category.SOCIAL)])
        guests = ClientGroup.objects.filter(unit=unit, name="Khách").first()
        row = services.settings_row()
        if row.default_group_id is None and guests is not None:
            row.default_group = guests
            row.save(update_fields=["default_group"])
    made["version"] = services.compile_now().version
    return made
