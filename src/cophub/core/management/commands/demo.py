"""`cophub demo`: a demo province, district, two schools, one account per role,
and a few sample cases. Safe to run again: units and accounts are reused,
samples are made once, and the accounts get fresh passwords that are printed.
Accounts that need two-factor login get a confirmed TOTP device (kept across
runs) whose key is printed, so the demo can be logged into at once."""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from cophub.evidence import vault
from cophub.orgs.models import Role, Unit, UnitKind

UNITS = [
    # code, kind, name, parent code, counsellor (name, phone, email, hours)
    ("so-gddt-hai-phong", UnitKind.PROVINCE, "Sở GD&ĐT Hải Phòng", None, None),
    ("phong-gddt-hong-bang", UnitKind.DISTRICT, "Phòng GD&ĐT quận Hồng Bàng", "so-gddt-hai-phong",
     ("Tổ tư vấn học đường quận", "0225 3842 111", "tuvan@hongbang.example.edu.vn", "Thứ Hai – Thứ Sáu, 7:30–17:00")),
    ("th-hung-vuong", UnitKind.SCHOOL, "Trường Tiểu học Hùng Vương", "phong-gddt-hong-bang",
     ("Cô Nguyễn Thị Lan", "0225 3745 222", "tuvan@thhungvuong.example.edu.vn", "Giờ ra chơi và 16:30–17:30")),
    ("thcs-hong-bang", UnitKind.SCHOOL, "Trường THCS Hồng Bàng", "phong-gddt-hong-bang",
     ("Thầy Trần Văn Minh", "0225 3745 333", "", "Thứ Ba và Thứ Năm, 14:00–16:00")),
]
HOME = "phong-gddt-hong-bang"
# The sandbox hash list holds this file's SHA-256 and MD5 (docs/api.md, "Hash list feed"),
# so a sandbox key's feed is not empty and a provider can test matching with a harmless file.
SANDBOX_TEST_FILE = b"cophub sandbox test file 1"
DEMO_PROVIDER = "Nền tảng mẫu (sandbox)"

ACCOUNTS = [
    # username, role, unit code
    ("admin", Role.ADMIN, "so-gddt-hai-phong"),
    ("handler", Role.HANDLER, "phong-gddt-hong-bang"),
    ("counsellor", Role.COUNSELLOR, "th-hung-vuong"),
    ("teacher", Role.TEACHER, "th-hung-vuong"),
    ("itadmin", Role.IT_ADMIN, "th-hung-vuong"),
    ("observer", Role.OBSERVER, "so-gddt-hai-phong"),
]


def _sample_picture() -> bytes:
    """A drawn, harmless picture standing in for a screenshot."""
    image = Image.new("RGB", (480, 320), (236, 240, 244))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 460, 70), fill=(59, 89, 152))
    for row in range(4):
        top = 90 + row * 55
        draw.rounded_rectangle((30 if row % 2 else 150, top, 330 if row % 2 else 450, top + 40), 12, fill=(255, 255, 255) if row % 2 else (0, 132, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class Command(BaseCommand):
    help = "Create (or refresh) the demo units, accounts and sample cases, and print the logins."

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        vault.ensure_master_key()
        with transaction.atomic():
            units = self._units()
            logins = self._accounts(units)
        self._demo_lists()
        self._demo_directory()
        self._demo_netfilter(units)
        made = self._samples(units, logins)
        self._print(units, logins, made)
        self._sandbox_hashes()
        self.stdout.write(f"sandbox key: {self._sandbox_key(units[HOME])}")

    def _units(self) -> dict[str, Unit]:
        units: dict[str, Unit] = {}
        for code, kind, name, parent, counsellor in UNITS:
            unit, _ = Unit.objects.get_or_create(code=code, defaults={"kind": kind, "name": name, "parent": units.get(parent)})
            if counsellor:
                unit.counsellor_name, unit.counsellor_phone, unit.counsellor_email, unit.counsellor_hours = counsellor
            unit.is_hub_home = code == HOME
            unit.save()
            units[code] = unit
        return units

    def _accounts(self, units) -> list[tuple[str, str, str, str, str]]:
        from cophub.cases import two_factor

        User = get_user_model()
        logins = []
        for username, role, unit_code in ACCOUNTS:
            user, _ = User.objects.get_or_create(username=username)
            password = "-".join(secrets.token_hex(2) for _ in range(3))
            user.set_password(password)
            user.is_staff = user.is_superuser = role == Role.ADMIN
            user.save()
            user.memberships.get_or_create(unit=units[unit_code], role=role)
            totp = two_factor.base32_secret(two_factor.ensure_confirmed_device(user, "demo")) if two_factor.required_for(user) else ""
            logins.append((username, password, role, units[unit_code].name, totp))
        return logins

    def _samples(self, units, logins) -> bool:
        from cophub.cases import services as cases
        from cophub.cases.models import Case
        from cophub.intake.services import receive

        district = units[HOME]
        if Case.objects.filter(unit__path__startswith=district.path).exists():
            return False
        User = get_user_model()
        handler = User.objects.get(username="handler")
        teacher = User.objects.get(username="teacher")
        school = units["th-hung-vuong"]

        bullying = receive(unit=school, channel="web_child", reporter_kind="child", category="cyberbullying", age_band="9_12",
                           where_app="Zalo", description="Các bạn trong nhóm lớp gửi ảnh chế về em và bảo cả lớp không chơi với em.",
                           files=[("anh-chup-man-hinh.png", _sample_picture())]).submission
        case = cases.case_for_submission(bullying)
        cases.assign(case, handler, handler)
        cases.transition(case, "triaged", handler, "Bắt nạt qua mạng trong lớp, cần phối hợp với giáo viên chủ nhiệm.")
        cases.transition(case, "assessing", handler, "")
        cases.send_message(case, "Cảm ơn em đã kể. Cô tư vấn của trường sẽ gặp em trong tuần này. Em không có lỗi gì cả.", handler)
        cases.add_note(case, "Đã báo giáo viên chủ nhiệm lớp 4A; hẹn gặp phụ huynh thứ Năm.", handler)

        receive(unit=district, channel="web_adult", reporter_kind="parent", category="scam", age_band="13_15",
                where_url="http://free-kimcuong-ff.example/nhan-qua", where_app="Free Fire",
                how_known=("child_told"), description="Con tôi được nhắn tin tặng kim cương miễn phí nếu đăng nhập tài khoản vào trang này.",
                contact_ok=True, contact_name="Phụ huynh em Hoa", contact_phone="0912 000 111")

        receive(unit=district, channel="phone_111", reporter_kind="unknown", category="grooming", age_band="13_15",
                where_app="TikTok", reported_account="@anh.trai.toc.vang",
                description="Tổng đài 111 chuyển: một người lạ nhắn tin làm quen, xin ảnh riêng tư và hẹn gặp, dặn không kể với bố mẹ.",
                entered_by=teacher, received_at=timezone.now() - timedelta(minutes=40))

        misleading = receive(unit=units["thcs-hong-bang"], channel="web_child", reporter_kind="child", category="misleading_content",
                             age_band="13_15", where_url="http://roblox-robux-mienphi.example", description="Trang giả Roblox.").submission
        done = cases.case_for_submission(misleading)
        for state in ("triaged", "assessing", "resolved"):
            cases.transition(done, state, handler, "Trang đã bị gỡ." if state == "resolved" else "")
        return True

    def _demo_lists(self) -> None:
        """Two imported lists, so the demo's reports show matching: a domain and a picture's PDQ."""
        from cophub.detection.hashing import pdq_for_image
        from cophub.hashbanks import services as hashbanks
        from cophub.hashbanks.models import Bank, BankKind

        sites, _ = Bank.objects.get_or_create(name="Danh sách mẫu: trang lừa đảo (demo)",
                                              defaults={"kind": BankKind.IMPORTED, "origin": "cophub demo"})
        hashbanks.add_signals(sites, {"domain": "free-kimcuong-ff.example"}, source="demo", actor="demo")
        pictures, _ = Bank.objects.get_or_create(name="Danh sách mẫu: ảnh (demo)",
                                                 defaults={"kind": BankKind.IMPORTED, "origin": "cophub demo"})
        pdq = pdq_for_image(_sample_picture())
        hashbanks.add_signals(pictures, {"pdq": hashbanks.Signal(pdq.hash, pdq.quality)}, source="demo", actor="demo",
                              note="the demo's drawn screenshot")

    def _demo_netfilter(self, units) -> None:
        """The school network filter of the secondary school (grades 6-9); its IT administrator is the demo's."""
        from cophub.netfilter import demo as netfilter_demo
        from cophub.orgs.services import grant

        school = units["thcs-hong-bang"]
        itadmin = get_user_model().objects.filter(username="itadmin").first()
        if itadmin is not None:
            grant(itadmin, school, Role.IT_ADMIN)
        netfilter_demo.seed(school, itadmin)

    def _demo_directory(self) -> None:
        """Referral targets a school would use; example addresses (no mail leaves a demo hub without SMTP)."""
        from cophub.referrals.models import Channel, ChannelKind, Target, TargetKind

        directory = [
            ("Phòng An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao, Công an TP Hải Phòng", TargetKind.POLICE, "",
             "Phòng An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao (PA05), Công an thành phố Hải Phòng",
             [(ChannelKind.MANUAL, ""), (ChannelKind.EMAIL, "pa05@congan-demo.example")]),
            ("Tổng đài quốc gia bảo vệ trẻ em 111", TargetKind.HOTLINE, "", "Tổng đài điện thoại quốc gia bảo vệ trẻ em 111",
             [(ChannelKind.MANUAL, "")]),
            ("TikTok (demo)", TargetKind.PLATFORM, "tiktok.com\ntiktokv.com", "Bộ phận An toàn và Tin cậy, TikTok Việt Nam",
             [(ChannelKind.EMAIL, "legal-vn@tiktok-demo.example")]),
        ]
        for name, kind, domains, addressee, channels in directory:
            target, created = Target.objects.get_or_create(name=name, defaults={"kind": kind, "domains": domains, "addressee": addressee})
            if created:
                for position, (channel_kind, address) in enumerate(channels):
                    Channel.objects.create(target=target, kind=channel_kind, address=address, position=position)

    def _sandbox_hashes(self) -> None:
        """Test entries for sandbox keys; left as they are when already there."""
        from cophub.hashbanks import services as hashbanks

        signals = {"sha256": hashlib.sha256(SANDBOX_TEST_FILE).hexdigest(), "md5": hashlib.md5(SANDBOX_TEST_FILE).hexdigest()}
        hashbanks.add_signals(hashbanks.sandbox_bank(), signals, source="demo", actor="demo", note="cophub sandbox test file 1")

    def _sandbox_key(self, district) -> str:
        """A fresh sandbox key for the demo provider; the previous ones stop working."""
        from cophub.providers import keys
        from cophub.providers.models import Provider

        with transaction.atomic():
            provider, _ = Provider.objects.get_or_create(name=DEMO_PROVIDER, defaults={"unit": district, "contact_email": "api@nen-tang-mau.example"})
            for old in provider.keys.filter(sandbox=True).exclude(revoked_at__lte=timezone.now()):
                keys.revoke_key(old, actor="demo")
            _, plaintext = keys.issue_key(provider, ["reports:write", "hashes:read"], sandbox=True, actor="demo")
        return plaintext

    def _print(self, units, logins, made) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS(f"Demo hub ready: {units[HOME].name} (with {len(units) - 2} schools)."))
        out.write("Sample cases created." if made else "Sample cases already there; left as they were.")
        out.write("Demo logins (new passwords on every run of `cophub demo`; a totp key, kept across runs, "
                  "goes into an authenticator app for accounts with two-factor login):")
        width = max(len(u) for u, *_ in logins)
        for username, password, role, unit, totp in logins:
            second_factor = f"  totp: {totp}" if totp else ""
            out.write(f"  login: {username.ljust(width)}  password: {password}  role: {role}  unit: {unit}{second_factor}")
