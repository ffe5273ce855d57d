"""Bulk import and export of hash lists: the formats, the feed, the command line."""

from __future__ import annotations

import hashlib
import io
import json
import time

import pytest
from django.core.management import CommandError, call_command

from cophub.audit.models import AuditEvent
from cophub.hashbanks import formats, services
from cophub.hashbanks.models import Bank, BankChange, BankEntry, BankKind, ChangeAction

pytestmark = pytest.mark.django_db
HEADER = "signal_type,value,quality,note,source,added_at\n"


def pdq(n) -> str:
    return hashlib.sha256(f"ảnh {n}".encode()).hexdigest()  # 64 hex digits: a well-formed PDQ hash


def md5(n) -> str:
    return hashlib.md5(f"tệp {n}".encode()).hexdigest()


def csv_bytes(*lines: str, header: str = HEADER) -> io.BytesIO:
    return io.BytesIO((header + "".join(line + "\n" for line in lines)).encode())


def imported(shared=True, **kwargs) -> Bank:
    return services.create_bank("Danh sách nhập", BankKind.IMPORTED, actor=None, shared=shared, **kwargs)


def run_import(bank, stream, format_name="csv", signal_type=None, **kwargs):
    rows = formats.reader_for(format_name, stream, signal_type)
    return services.import_signals(bank, rows, actor=None, source="test", **kwargs)


def values(items) -> set[str]:
    return {item["value"] for item in items}


# --- Import ------------------------------------------------------------------------------------


def test_good_and_bad_lines_with_line_numbers():
    bank = imported()
    stream = csv_bytes(f"pdq,{pdq(1)},90,ảnh mẫu,,", "md5,not-hex,,,,", f"tmk,{pdq(2)},,,,", f"sha256,{'a' * 2000},,,,",
                       f"video_md5,{md5(1).upper()},,,,", "", f"pdq,{pdq(3)},abc,,,", f"pdq,{pdq(4)}")
    result = run_import(bank, stream)
    assert (result.added, result.unchanged, result.refused_count) == (3, 0, 4)
    reasons = dict(result.refused)
    assert set(reasons) == {3, 4, 5, 8}  # the header is line 1; the blank line 7 is skipped
    assert "md5" in reasons[3] and "tmk" in reasons[4] and "2000" in reasons[5] and "abc" in reasons[8]
    stored = {(e.signal_type, e.value): e for e in BankEntry.objects.filter(bank=bank)}
    assert set(stored) == {("pdq", pdq(1)), ("md5", md5(1)), ("pdq", pdq(4))}
    assert stored["pdq", pdq(1)].quality == 90 and stored["pdq", pdq(1)].note == "ảnh mẫu"
    assert stored["pdq", pdq(1)].source == "test"


def test_bom_crlf_and_extra_columns():
    body = "\ufeffsignal_type,value,quality,note,source,added_at,extra\r\n" + f"pdq,{pdq(1)},80,,,,x\r\nmd5,{md5(1)},,,,,\r\n"
    result = run_import(imported(), io.BytesIO(body.encode()))
    assert (result.added, result.refused_count) == (2, 0)


def test_not_utf8_is_refused_with_a_clear_error():
    body = (HEADER + f"pdq,{pdq(1)},,,,\n" + "md5,abc,,ghi chú,,\n").encode("cp1258")
    body = body.replace("ghi chú".encode("cp1258"), b"ghi ch\xfa")
    with pytest.raises(formats.FormatError, match="Dòng 3"):
        run_import(imported(), io.BytesIO(body))
    with pytest.raises(formats.FormatError, match="UTF-16"):
        run_import(imported(), io.BytesIO(HEADER.encode("utf-16")))
    # The run is audited even when the file turns out unreadable half-way.
    event = AuditEvent.objects.filter(action="hashbank.imported").first()
    assert event.data["completed"] is False and "Dòng 3" in event.data["error"]


def test_a_csv_without_the_header_is_refused():
    with pytest.raises(formats.FormatError, match="signal_type"):
        run_import(imported(), io.BytesIO(f"{pdq(1)},pdq\n".encode()))


def test_reimport_is_idempotent_and_audited_once_per_run():
    bank = imported()
    lines = [f"pdq,{pdq(n)},,,," for n in range(30)] + [f"pdq,{pdq(0)},,,,"]  # one duplicate within the file
    first = run_import(bank, csv_bytes(*lines), batch_size=7)
    assert (first.added, first.unchanged) == (30, 1)
    again = run_import(bank, csv_bytes(*lines), batch_size=7)
    assert (again.added, again.enabled_again, again.unchanged) == (0, 0, 31)
    assert BankEntry.objects.filter(bank=bank).count() == 30 and BankChange.objects.count() == 30
    events = AuditEvent.objects.filter(action="hashbank.imported")
    assert events.count() == 2
    assert events.first().data["added"] == 30 and events.first().data["completed"] is True


def test_import_enables_a_disabled_entry_with_a_new_added_change():
    bank = imported()
    run_import(bank, csv_bytes(f"md5,{md5(1)},,,,"))
    entry = BankEntry.objects.get(bank=bank)
    services.disable_entry(entry, None, "nhầm")
    cursor = services.feed(0, 100, sandbox=False)["cursor"]
    result = run_import(bank, csv_bytes(f"md5,{md5(1)},,,,", f"md5,{md5(2)},,,,"))
    assert (result.added, result.enabled_again) == (1, 1)
    entry.refresh_from_db()
    assert entry.enabled and entry.disabled_at is None
    assert entry.changes.filter(action=ChangeAction.ADDED).count() == 2
    assert values(services.feed(cursor, 100, sandbox=False)["added"]) == {md5(1), md5(2)}


def test_low_quality_pdq_is_refused_by_the_list_minimum():
    result = run_import(imported(min_quality=60), csv_bytes(f"pdq,{pdq(1)},59,,,", f"pdq,{pdq(2)},60,,,"))
    assert result.added == 1 and "59" in result.refused[0][1]


def test_refusals_kept_are_capped_but_counted():
    lines = [f"md5,bad{n},,,," for n in range(services.MAX_REFUSALS_KEPT + 5)]
    result = run_import(imported(), csv_bytes(*lines))
    assert result.refused_count == services.MAX_REFUSALS_KEPT + 5 and len(result.refused) == services.MAX_REFUSALS_KEPT


# --- The feed --------------------------------------------------------------------------------------


def test_the_feed_sends_shared_lists_only_and_never_allow_lists():
    shared, private = imported(), imported(shared=False)
    allow = services.create_bank("Cho phép", BankKind.ALLOW, actor=None)
    for n, bank in enumerate([shared, private, allow]):
        run_import(bank, csv_bytes(f"md5,{md5(n)},,,,"))
    assert values(services.feed(0, 100, sandbox=False)["added"]) == {md5(0)}
    with pytest.raises(ValueError):
        services.create_bank("Cho phép, chia sẻ", BankKind.ALLOW, actor=None, shared=True)


def test_disabling_a_shared_list_sends_removals_and_enabling_it_sends_them_again():
    bank, other = imported(), services.create_bank("Khác", BankKind.IMPORTED, actor=None, shared=True)
    run_import(bank, csv_bytes(*[f"md5,{md5(n)},,,," for n in range(3)]))
    run_import(other, csv_bytes(f"md5,{md5(0)},,,,"))  # also in another shared list: providers keep it
    cursor = services.feed(0, 100, sandbox=False)["cursor"]

    assert services.set_bank_enabled(bank, False, actor=None, reason="danh sách cũ") == 3
    page = services.feed(cursor, 100, sandbox=False)
    assert page["added"] == [] and values(page["removed"]) == {md5(1), md5(2)}
    assert BankEntry.objects.filter(bank=bank, enabled=True).count() == 3  # entries keep their state
    assert services.set_bank_enabled(bank, False, actor=None, reason="lần nữa") == 0
    # A provider starting from scratch never gets the switched-off list's entries.
    assert values(services.feed(0, 100, sandbox=False)["added"]) == {md5(0)}

    services.set_bank_enabled(bank, True, actor=None, reason="dùng lại")
    later = services.feed(page["cursor"], 100, sandbox=False)
    assert values(later["added"]) == {md5(0), md5(1), md5(2)} and later["removed"] == []
    assert AuditEvent.objects.filter(action__in=["hashbank.disabled", "hashbank.enabled"]).count() == 2


def test_switching_needs_a_reason():
    with pytest.raises(ValueError):
        services.set_bank_enabled(imported(), False, actor=None, reason=" ")


# --- Export and the threatexchange formats ------------------------------------------------------------


def export(banks, format_name="csv", types=None) -> str:
    out = io.StringIO()
    formats.writer_for(format_name)(services.export_signals(banks, types), out)
    return out.getvalue()


def test_export_then_import_gives_the_same_entries():
    source = imported()
    run_import(source, csv_bytes(f"pdq,{pdq(1)},95,\"ghi chú, có dấu phẩy\",,", f"md5,{md5(1)},,,,", f"sha256,{pdq(9)},,,,",
                                 f"md5,{md5(2)},,,,"))
    services.disable_entry(BankEntry.objects.get(value=md5(2)), None, "gỡ")  # disabled entries are not exported
    copy = services.create_bank("Bản sao", BankKind.IMPORTED, actor=None)
    result = run_import(copy, io.BytesIO(export([source]).encode()))
    assert result.refused_count == 0

    def snapshot(bank):
        return set(BankEntry.objects.filter(bank=bank, enabled=True).values_list("signal_type", "value", "quality", "note"))

    assert snapshot(copy) == snapshot(source) and len(snapshot(copy)) == 3
    assert export([source], types=["pdq"]).count("\n") == 2  # the header and one PDQ row


def test_te_lines_round_trip_through_the_threatexchange_library():
    signal_base = pytest.importorskip("threatexchange.signal_type.signal_base")
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal
    from threatexchange.signal_type.sha256 import VideoSHA256Signal

    bank = imported()
    run_import(bank, csv_bytes(f"pdq,{pdq(1)},,,,", f"md5,{md5(1)},,,,", f"sha256,{pdq(2)},,,,", "domain,example.com,,,,"))
    text = export([bank], "te")
    library = {cls.get_name(): cls for cls in (PdqSignal, VideoMD5Signal, VideoSHA256Signal)}
    parsed = set()
    for line in text.splitlines():
        # exactly how the library's file exchange reads a line (exchanges/impl/file_api.py)
        name, _, signal = line.strip().partition(" ")
        cls = library[name]
        assert issubclass(cls, signal_base.SignalType)
        parsed.add((name, cls.validate_signal_str(signal)))
    assert parsed == {("pdq", pdq(1)), ("video_md5", md5(1)), ("video_sha256", pdq(2))}  # a domain has no threatexchange type

    copy = services.create_bank("Bản sao", BankKind.IMPORTED, actor=None)
    result = run_import(copy, io.BytesIO(text.encode()), "te")
    assert result.added == 3 and result.refused_count == 0


def test_te_files_read_the_same_by_the_library_and_by_us(tmp_path):
    """A signal file as the library's file exchange reads it (exchanges/impl/file_api.py).

    Its writer (`report_opinion`) opens the file with mode "wta", which
    Python 3.11 refuses, so the lines are written here in its format:
    `f"{s_type.get_name()} {signal}"`.
    """
    file_api = pytest.importorskip("threatexchange.exchanges.impl.file_api")
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    path = tmp_path / "signals.txt"
    lines = [f"{PdqSignal.get_name()} {pdq(1)}", f"{VideoMD5Signal.get_name()} {md5(1)}", f"url_md5 {md5(2)}", "raw_text xin chào"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    api = file_api.LocalFileSignalExchangeAPI(file_api.FileCollaborationConfig(name="thử", api="local_file", enabled=True,
                                                                               filename=str(path)))
    theirs = {key for delta in api.fetch_iter([], None) for key in delta.updates}
    with path.open("rb") as f:
        result = run_import(imported(), f, "te")
    ours = set(BankEntry.objects.values_list("signal_type", "value"))
    assert {("pdq", pdq(1)), ("video_md5", md5(1))} <= theirs
    assert ours == {("pdq", pdq(1)), ("md5", md5(1))}
    assert [line for line, _reason in result.refused] == [3, 4]  # url_md5 and raw_text: types we cannot hold


def test_threatexchange_descriptors_and_query_csv():
    descriptors = [
        {"id": "1", "raw_indicator": pdq(1), "type": "HASH_PDQ", "status": "MALICIOUS", "owner": {"id": "7"},
         "tags": {"data": [{"id": "9", "text": "csam"}]}, "added_on": "2026-01-01T00:00:00+0000"},
        {"id": "2", "raw_indicator": md5(1), "type": "HASH_MD5", "status": "NON_MALICIOUS", "owner": {"id": "7"}},
        {"id": "3", "raw_indicator": "[h]ttps://example.com/a", "type": "UNCLICKABLE_URL"},
        {"id": "4", "raw_indicator": "x", "type": "TREND_QUERY"},
    ]
    bank = imported()
    result = run_import(bank, io.BytesIO(json.dumps({"data": descriptors[:2] + descriptors[3:]}).encode()), "te-json")
    assert result.added == 1 and result.refused_count == 2
    assert BankEntry.objects.get(bank=bank).note == "tags: csam"
    # `threatexchange api fb_threatexchange query --format jsonl`, and the same query as CSV
    lines = "\n".join(json.dumps({"id": d["id"], "indicator": d["raw_indicator"], "type": d["type"]}) for d in descriptors[:2])
    assert run_import(imported(), io.BytesIO(lines.encode()), "te-json").added == 2
    query_csv = f"id,indicator,type,status,tags,owner_id\n1,{md5(5)},HASH_VIDEO_MD5,MALICIOUS,csam,7\n2,{md5(6)},HASH_MD5,NON_MALICIOUS,,7\n"
    result = run_import(imported(), io.BytesIO(query_csv.encode()))
    assert result.added == 1 and "NON_MALICIOUS" in result.refused[0][1]


def test_plain_lists_take_the_type_from_the_operator():
    body = f"# danh sách MD5\n{md5(1)}\n\n{md5(2).upper()}  tệp.jpg\nnot-a-hash\n"
    result = run_import(imported(), io.BytesIO(body.encode()), "plain", "md5")
    assert (result.added, result.refused) == (2, [(5, "không phải giá trị md5 hợp lệ")])
    with pytest.raises(formats.FormatError):
        formats.reader_for("plain", io.BytesIO(b""), None)


def test_urls_and_domains_are_normalised():
    urls = pytest.importorskip("cophub.detection.urls")
    if not hasattr(urls, "normalise_url"):
        pytest.skip("detection.urls is not written yet")
    result = run_import(imported(), io.BytesIO(b"HTTPS://Example.COM/a\n"), "plain", "url")
    assert result.added == 1 and BankEntry.objects.get().value.startswith("https://example.com")


# --- The command line ------------------------------------------------------------------------


def cli(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("hashes", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_line_end_to_end(tmp_path):
    out, _err = cli("create-bank", "NCMEC", "--kind", "imported", "--origin", "NCMEC", "--shared", "--threshold", "20")
    bank = Bank.objects.get(name="NCMEC")
    assert str(bank.pk) in out and bank.pdq_threshold == 20 and bank.shared_with_providers
    source = tmp_path / "list.csv"
    source.write_text(HEADER + f"pdq,{pdq(1)},90,,,\nmd5,{md5(1)},,,,\nmd5,sai,,,,\n", encoding="utf-8")

    out, err = cli("import", str(source), "--bank", "NCMEC", "--quiet")
    assert "2 đã thêm" in out and "1 bị từ chối" in out  # the summary is in Vietnamese (LANGUAGE_CODE)
    assert "dòng 4" in err and "\r" not in err  # refusals listed; no progress bar off a terminal
    out, err = cli("import", str(source), "--bank", str(bank.pk))
    assert "2 đã có" in out and "\r" not in err

    out, _err = cli("banks")
    assert "NCMEC" in out and "2/2" in out
    target = tmp_path / "out.te"
    cli("export", str(target), "--bank", "NCMEC", "--format", "te", "--types", "pdq")
    assert target.read_text() == f"pdq {pdq(1)}\n"
    out, _err = cli("export", "-", "--bank", "NCMEC")
    assert out.startswith("signal_type,value") and md5(1) in out

    out, _err = cli("disable-bank", "NCMEC", "--reason", "thử")
    assert not Bank.objects.get(pk=bank.pk).enabled and values(services.feed(0, 100, sandbox=False)["removed"]) == {pdq(1), md5(1)}
    cli("enable-bank", str(bank.pk), "--reason", "thử lại")
    assert Bank.objects.get(pk=bank.pk).enabled


@pytest.mark.parametrize("args, message", [
    (["import", "/no/such/file.csv", "--bank", "X"], "file.csv"),
    (["import", "FILE", "--bank", "Không có"], "Không có"),
    (["import", "FILE", "--bank", "NCMEC", "--format", "xml"], "xml"),
    (["import", "FILE", "--bank", "NCMEC", "--format", "plain"], "--type"),
    (["export", "-", "--format", "xml"], "xml"),
    (["export", "-", "--types", "tmk"], "tmk"),
])
def test_the_command_line_says_what_is_wrong(tmp_path, args, message):
    services.create_bank("NCMEC", BankKind.IMPORTED, actor=None)
    services.create_bank("X", BankKind.IMPORTED, actor=None)
    source = tmp_path / "list.csv"
    source.write_text(HEADER)
    args = [str(source) if a == "FILE" else a for a in args]
    with pytest.raises(CommandError, match=message):
        cli(*args)


def test_a_100k_row_import_is_fast_enough(tmp_path):
    """A regression guard, not a benchmark (bench/hash_import.py is): about 4k rows/s would still pass."""
    source = tmp_path / "big.csv"
    with source.open("w") as f:
        f.write(HEADER)
        for n in range(100_000):
            f.write(f"pdq,{n:064x},80,,,\n")
    services.create_bank("Lớn", BankKind.IMPORTED, actor=None, shared=True)
    started = time.perf_counter()
    out, _err = cli("import", str(source), "--bank", "Lớn", "--quiet")
    assert time.perf_counter() - started < 60
    assert BankEntry.objects.count() == 100_000 and BankChange.objects.count() == 100_000
