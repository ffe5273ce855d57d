"""Text indicators (detection.text) and the classifier plug-ins (detection.classifiers)."""

from __future__ import annotations

import io
import sys
import time
import types
import unicodedata

import pytest
from django.core.exceptions import ImproperlyConfigured

from cophub.core.categories import CODES
from cophub.detection import classifiers, text
from cophub.detection.classifiers import Label, LexiconClassifier, NudeNetClassifier
from cophub.detection.text import Indicator, LexiconError, find_indicators, normalise_vi, strongest, summarise


def scores(value: str, language=None) -> dict[str, float]:
    return summarise(find_indicators(value, language))


def strongest_in(value: str, category: str) -> Indicator | None:
    return strongest([i for i in find_indicators(value) if i.category == category])


def nfd(value: str) -> str:
    return unicodedata.normalize("NFD", value)


# --- The acceptance case: a stranger wants to meet and says not to tell the parents -----------------------

MEETING_SECRET = [
    "có ng lạ ib bảo muốn gặp e, dặn ko dc nói vs bme",
    "co ng la ib bao muon gap e, dan ko dc noi vs bme",  # no diacritics
    "c0 ng l4 ib b4o mu0n g4p e, d4n k0 dc n0i vs bme",  # leetspeak
    "CÓ NG LẠ IB BẢO MUỐN GẶPPP E, DẶN KO ĐC NÓI VS BME",  # capitals, stretched letters, đc
    nfd("có ng lạ ib bảo muốn gặp e, dặn ko dc nói vs bme"),  # decomposed Unicode (some phones)
    "có ng lạ ib bảo muốn g.ặ.p e, dặn k0 đc n\u200bói vs bm",  # spaced-out word, zero-width space
    "muốn gặp e nhưng đừng nói vs bố mẹ",
    "anh muốn gặp em.\nNhớ đừng nói với ba mẹ nhé",  # two lines: the secrecy marker boosts across them
    "anh đón em ở cổng sau nhé, không cho ai biết",
    "I want to meet you irl, but don't tell your parents",
    "wanna meet up? dont tell ur mom",
    "muốn gặp e, nhưng don't tell anyone",  # mixed languages: an English marker boosts a Vietnamese meeting
]


@pytest.mark.parametrize("message", MEETING_SECRET)
def test_meeting_kept_secret_is_strong(message):
    best = strongest_in(message, "meeting")
    assert best is not None, find_indicators(message)
    assert best.strong
    assert best.weight >= text.STRONG_FROM
    assert scores(message)["meeting"] >= 2.0


def test_acceptance_case_points_back_to_the_childs_words():
    message = "có ng lạ ib bảo muốn gặp e, dặn ko dc nói vs bme"
    found = find_indicators(message)
    phrases = {(i.category, i.phrase) for i in found}
    assert ("meeting", "gặp e, dặn ko dc nói vs bme") in phrases
    assert ("meeting", "muốn gặp e") in phrases
    assert ("grooming", "ib") in phrases
    assert any(i.boosted_by == "secrecy" for i in found)


@pytest.mark.parametrize("message", [
    "mai gặp nhau ở trường nhé, nhớ mang sách",
    "muốn gặp em quá",  # without secrecy a wish to meet stays weak
    "I want to meet you at the library after class",
])
def test_meeting_without_secrecy_is_weak(message):
    best = strongest_in(message, "meeting")
    assert best is None or (not best.strong and best.weight < text.WEAK_BELOW)


# --- Self-harm ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", [
    "t muốn ch3t",
    "tao muốn chết",
    "ko mun song nua",
    "không muốn sống nữa",
    "em định tự tử",
    "dạo này em hay cắt tay",
    "mình muốn kết thúc tất cả",
    "chán sống lắm rồi",
    "I want to kill myself",
    "i want to die",
    "gonna k1ll mys3lf tonight",
    "everyone would be better off without me",
    "I don't want to live anymore",
])
def test_self_harm(message):
    assert scores(message).get("self_harm", 0) >= text.WEAK_BELOW, find_indicators(message)


@pytest.mark.parametrize("message", [
    "đói muốn chết",
    "hôm nay mệt muốn chết",
    "nóng muốn chết luôn",
    "tớ không muốn chết đâu",
    "I'm dying to see the movie",
    "this homework is killing me",
    "I don't want to die in this game",
    "the Suicide Squad movie was fun",
    "bài thuyết trình về phòng chống tự tử",
    "đọc báo thấy vụ tự tử buồn quá",
    "giá đắt cắt cổ",
])
def test_self_harm_hyperbole_and_talk_about_it_stay_weak(message):
    assert scores(message).get("self_harm", 0) < text.WEAK_BELOW, find_indicators(message)


# --- Sextortion, grooming, bullying ----------------------------------------------------------------------------


@pytest.mark.parametrize("message", [
    "chuyển tiền không thì tao tung ảnh",
    "gửi ảnh nóng cho anh không thì anh đăng ảnh lên facebook",
    "nạp 2 triệu vào tk này không thì tao phát tán clip của mày",
    "muốn xóa ảnh thì phải chuyển tiền",
    "tao có ảnh của mày, gửi thêm ảnh đi không thì cả trường biết",
    "pay me $500 or I will leak your nudes",
    "I have your pics. send more or else everyone will see them",
])
def test_sextortion(message):
    assert scores(message).get("sextortion", 0) >= 2.0, find_indicators(message)


@pytest.mark.parametrize("message", [
    "em bao nhiêu tuổi? đừng nói với ai nhé",
    "anh nạp thẻ cho em nếu em gửi ảnh",
    "cho anh xem ngực em đi",
    "chỉ có anh mới hiểu em thôi, nhớ xoá tin nhắn đi nhé",
    "add me on snapchat, it's our little secret",
    "send me nudes",
    "you are so mature for your age",
    "I'll give you robux for pics",
])
def test_grooming(message):
    assert scores(message).get("grooming", 0) >= text.WEAK_BELOW, find_indicators(message)


@pytest.mark.parametrize("message", [
    "bọn tao sẽ đánh hội đồng mày",
    "cả lớp tẩy chay nó đi, không ai chơi với nó",
    "đồ ngu, cút đi",
    "mày chết đi",
    "tụi nó lập group anti em",
    "Các bạn trong nhóm lớp gửi ảnh chế về em và bảo cả lớp không chơi với em.",
    "no bao ca lop ko choi vs e",
    "kys",
    "nobody likes you, everyone hates you",
    "you're so ugly",
])
def test_bullying(message):
    assert scores(message).get("bullying", 0) >= text.WEAK_BELOW, find_indicators(message)


# --- Private information ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("message, phrase", [
    ("sđt em là 0912345678", "0912345678"),
    ("gọi 0912 345 678 nhé", "0912 345 678"),
    ("zalo: 0912.345.678", "0912.345.678"),
    ("số của nó +84 912 345 678", "+84 912 345 678"),
    ("+84912345678", "+84912345678"),
    ("nhà: 0225 3000 111", "0225 3000 111"),
    ("số 0388123456 ạ", "0388123456"),
])
def test_phone_numbers(message, phrase):
    found = [i for i in find_indicators(message) if i.rule == "detector:phone_vn"]
    assert [i.phrase for i in found] == [phrase]


@pytest.mark.parametrize("message", [
    "em được 10.000.000 đồng tiền mừng tuổi",
    "điểm 0.5 thôi",
    "mã đơn 100912345678",  # digits around a phone-like run
    "năm 2024 em học lớp 7",
    "stk 0011223344",
])
def test_numbers_that_are_not_phones(message):
    assert not [i for i in find_indicators(message) if i.rule == "detector:phone_vn"]


@pytest.mark.parametrize("message, found", [
    ("cccd của em là 001203012345", True),
    ("CCCD: 079 203 012345", True),
    ("căn cước 038307001234", True),
    ("stk 123456789012", False),  # 123 is no province
    ("mã 001903012345", False),  # born in the 2200s: not a child's card
    ("0012030123456", False),  # 13 digits
])
def test_citizen_id(message, found):
    assert bool([i for i in find_indicators(message) if i.rule == "detector:cccd_vn"]) is found


def test_address_and_school_add_up():
    message = "nhà em ở số 12 ngõ 34, em học lớp 7A trường THCS Lê Lợi, sđt 0912345678"
    assert scores(message)["private_info"] >= 2.0


# --- Ordinary messages -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", [
    "mai gặp nhau ở trường nhé, nhớ mang sách",
    "bố mẹ đưa em đi học",
    "I'm dying to see the movie",
    "mẹ đón con ở cổng trường nhé",
    "cô cho cả lớp xem phim hoạt hình",
    "em đăng ảnh lên facebook rồi",
    "Tùng Anh học lớp 7A1",
    "hoa hồng đẹp quá",
    "ăn đi không thì nguội",
    "anh trai đưa em đi học",
    "cả nhà đi chơi công viên, vui lắm",
    "hôm nay cô giáo khen em học giỏi",
    "Can you send me the homework photos?",
    "we will beat them in the final",
    "bài này khó quá, chán ghê",
    "con chó nhà em dễ thương lắm",
    "the dog ate my homework lol",
    "mẹ bảo con không chơi với bạn xấu",
    "anh che ve em khi bi me mang",
])
def test_ordinary_messages_are_at_most_weak(message):
    found = find_indicators(message)
    assert all(score < text.WEAK_BELOW for score in summarise(found).values()), found
    assert not any(i.strong for i in found)


# --- Indicators, summaries, languages ------------------------------------------------------------------------------


@pytest.mark.parametrize("message", MEETING_SECRET + ["sđt em là 0912 345 678", "t muốn ch3t", "pay me or I leak your pics"])
def test_phrase_is_the_original_text(message):
    for i in find_indicators(message):
        assert i.phrase and message[i.start:i.end] == i.phrase
        assert i.category in text.CATEGORIES


def test_indicator_api():
    found = find_indicators("em muốn chết")
    best = strongest(found)
    assert isinstance(best, Indicator)
    assert best.category == "self_harm" and best.strong
    assert best.language == "vi" and best.pattern in best.rule
    with pytest.raises(AttributeError):
        best.weight = 0  # frozen


def test_summary_counts_a_rule_once():
    once = scores("đồ ngu")["bullying"]
    assert scores("đồ ngu đồ ngu đồ ngu đồ ngu")["bullying"] == once


def test_summary_adds_different_rules():
    assert scores("đồ ngu, cút đi")["bullying"] == scores("đồ ngu")["bullying"] + scores("cút đi")["bullying"]


def test_a_repeated_phrase_is_reported_a_bounded_number_of_times():
    found = find_indicators("đồ ngu. " * 500 + "0912345678 " * 500)
    assert len([i for i in found if i.category == "bullying"]) == text.MAX_PER_RULE
    assert len([i for i in found if i.rule == "detector:phone_vn"]) == text.MAX_PER_RULE
    assert summarise(found)["bullying"] == scores("đồ ngu")["bullying"]


def test_strongest_of_nothing():
    assert strongest([]) is None
    assert find_indicators("") == []
    assert summarise([]) == {}


def test_language_selects_the_lexicon():
    assert "self_harm" in scores("I want to kill myself", "en")
    assert "self_harm" not in scores("I want to kill myself", "vi")
    assert "self_harm" in scores("tao muốn chết", "vi")
    assert "self_harm" not in scores("tao muốn chết", "en")
    with pytest.raises(ValueError):
        find_indicators("x", "fr")


def test_detectors_run_for_every_language():
    assert scores("0912345678", "en") == {"private_info": text.PHONE_WEIGHT}


def test_hub_categories_exist():
    assert set(text.HUB_CATEGORY) == set(text.CATEGORIES)
    assert set(text.HUB_CATEGORY.values()) <= set(CODES)


# --- Normalisation ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, normalised", [
    # diacritics, case, NFC
    ("Gặp Nhau", "gap nhau"),
    ("ĐƯỢC", "duoc"),
    (nfd("bố mẹ"), "bo me"),
    # không
    ("ko", "khong"), ("k", "khong"), ("kh", "khong"), ("hk", "khong"), ("hok", "khong"),
    ("hem", "khong"), ("hông", "khong"), ("k0", "khong"), ("khum", "khong"), ("kg", "khong"),
    # other teen code
    ("j", "gi"), ("z", "vay"), ("v", "vay"), ("dc", "duoc"), ("đc", "duoc"),
    ("bme", "bo me"), ("bm", "bo me"), ("ba me", "bo me"), ("ba mẹ", "bo me"), ("bo me", "bo me"),
    ("ny", "nguoi yeu"), ("e", "em"), ("a", "anh"), ("vs", "voi"),
    ("ib", "nhan rieng"), ("inbox", "nhan rieng"), ("nt", "nhan tin"), ("ck", "chong"), ("vk", "vo"),
    ("ng", "nguoi"), ("mk", "minh"), ("mún", "muon"), ("mun", "muon"), ("sđt", "so dien thoai"),
    ("u", "you"), ("ur", "your"),
    # words that only become teen code without diacritics stay themselves
    ("à", "a"), ("ạ", "a"), ("ê", "e"), ("hồng", "hong"), ("hẻm", "hem"), ("mụn", "mun"),
    # teen code only as a whole word
    ("kem", "kem"), ("anh", "anh"), ("em", "em"), ("jv", "jv"), ("vsinh", "vsinh"),
    # stretched letters
    ("gặppp", "gap"), ("điiiii", "di"), ("huhuuu", "huhu"),
    # leetspeak inside words
    ("ch3t", "chet"), ("t0", "to"), ("m4y", "may"), ("k1ll", "kil"), ("ki11", "kil"), ("b@by", "baby"),
    ("p@$$word", "pasword"), ("h3ll0", "helo"),
    # numbers stay numbers
    ("13 tuổi", "13 tuoi"), ("0912345678", "0912345678"), ("lớp 12a1", "lop 12a1"), ("500k", "500k"),
    ("sdt0912345678", "sdt0912345678"), ("$50", "$50"), ("@minh", "@minh"),
    # spacing tricks and invisible characters
    ("g.ặ.p", "gap"), ("t-ự t-ử", "tu tu"), ("c_h_ế_t", "chet"), ("gặ\u200bp", "gap"), ("don't", "dont"),
    ("e.g", "eg"), ("e-mail", "em-mail"),
])
def test_normalise(raw, normalised):
    assert normalise_vi(raw) == normalised


def strip_diacritics(value: str) -> str:
    decomposed = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@pytest.mark.parametrize("language", text.LANGUAGES)
def test_every_rule_matches_without_diacritics(language):
    # A rule whose words read differently once stripped (e.g. "à") would miss a child who types without them.
    for rule in text.load_lexicon(language):
        pattern = rule.rule_id.split(":", 1)[1]
        assert text.parse_pattern(strip_diacritics(pattern)) == rule.elements, rule.rule_id


def test_lexicon_sizes():
    vi, en = text.load_lexicon("vi"), text.load_lexicon("en")
    assert 40 <= len(vi) <= 100 and 30 <= len(en) <= 65
    assert {r.category for r in vi} == {r.category for r in en} == set(text.CATEGORIES)


@pytest.mark.parametrize("line, error", [
    ("grooming\t1.0", "expected category"),
    ("flirting\t1.0\tgặp nhau", "unknown category"),
    ("meeting\tabc\tgặp nhau", "not a number"),
    ("meeting\t11\tgặp nhau", "outside"),
    ("meeting\t1\t* gặp nhau", "between words"),
    ("meeting\t1\tgặp nhau *", "start and end"),
    ("meeting\t1\tgặp * * nhau", "between words"),
    ("meeting\t1\t(gặp|đón nhau", "parentheses"),
    ("meeting\t1\t(gặp|) nhau", "optional"),
    ("meeting\t1\tgặp nhau\tboost=secrecy", "unknown option"),
    ("meeting\t1\tgặp nhau\tloud", "unknown option"),
])
def test_lexicon_errors(line, error):
    with pytest.raises(LexiconError, match=error):
        text.parse_lexicon([line], "vi", "test.txt")


def test_lexicon_duplicate_and_gap_syntax():
    with pytest.raises(LexiconError, match="duplicate"):
        text.parse_lexicon(["meeting\t1\tgặp nhau", "grooming  1  gặp nhau"], "vi")
    (rule,) = text.parse_lexicon(["meeting  1  gặp *5 không … nói"], "vi")
    assert [gap for gap, _ in rule.elements] == [0, 5, 3]


# --- Speed ----------------------------------------------------------------------------------------------------------------

BENIGN = ("mai gặp nhau ở trường nhé, nhớ mang sách toán và vở bài tập. bố mẹ đưa em đi học lúc 7 giờ. "
          "hôm qua cả lớp đi tham quan bảo tàng, vui lắm ko? We watched a movie and I'm dying to see the sequel! ")


def cpu_seconds(function, *args) -> float:
    # CPU time, best of two: tests run side by side on shared machines.
    best = float("inf")
    for _ in range(2):
        start = time.process_time()
        function(*args)
        best = min(best, time.process_time() - start)
    return best


def test_a_paragraph_takes_well_under_a_millisecond():
    paragraph = MEETING_SECRET[0] + ". " + BENIGN
    find_indicators(paragraph)
    start = time.process_time()
    for _ in range(200):
        find_indicators(paragraph)
    assert (time.process_time() - start) / 200 < 0.001


@pytest.mark.parametrize("sample", [BENIGN, MEETING_SECRET[0] + ". " + BENIGN])
def test_a_megabyte_takes_under_a_second(sample):
    megabyte = (sample * (1_000_000 // len(sample) + 1))[:1_000_000]
    assert cpu_seconds(find_indicators, megabyte) < 1.0


# --- Classifier plug-ins ----------------------------------------------------------------------------------------------------


class FakeImageClassifier:
    """A stand-in image model: the plug-in interface is what is tested here."""

    name = "fake-image"

    def classify(self, image_bytes: bytes) -> list[Label]:
        return [Label("sexual_content", 0.9)] if image_bytes.startswith(b"bad") else []


class NotAClassifier:
    pass


@pytest.fixture(autouse=True)
def _fresh_classifiers():
    classifiers.forget_classifiers()
    yield
    classifiers.forget_classifiers()


def test_default_classifiers(settings):
    del settings.COPHUB_TEXT_CLASSIFIERS
    del settings.COPHUB_IMAGE_CLASSIFIERS
    (lexicon,) = classifiers.text_classifiers()
    assert isinstance(lexicon, LexiconClassifier) and isinstance(lexicon, classifiers.TextClassifier)
    assert classifiers.image_classifiers() == ()
    assert classifiers.classify_image(b"anything") == {}


def test_lexicon_classifier_labels(settings):
    settings.COPHUB_TEXT_CLASSIFIERS = ["cophub.detection.classifiers.LexiconClassifier"]
    result = classifiers.classify_text("có ng lạ ib bảo muốn gặp e, dặn ko dc nói vs bme")
    labels = {label.category: label.score for label in result["lexicon"]}
    assert labels["meeting"] > 0.9 and 0 < labels["grooming"] < labels["meeting"]
    assert classifiers.classify_text("bố mẹ đưa em đi học") == {"lexicon": []}
    assert classifiers.lexicon_score(1.0) == 0.5


def test_image_classifier_loaded_by_dotted_path(settings):
    settings.COPHUB_IMAGE_CLASSIFIERS = [f"{__name__}.FakeImageClassifier"]
    assert classifiers.classify_image(b"bad picture") == {"fake-image": [Label("sexual_content", 0.9)]}
    assert classifiers.classify_image(b"fine picture") == {"fake-image": []}
    assert classifiers.image_classifiers() is classifiers.image_classifiers()  # loaded once


@pytest.mark.parametrize("value, error", [
    (["cophub.detection.nowhere.Classifier"], "cannot import"),
    ([f"{__name__}.NotAClassifier"], "not a ImageClassifier"),
    ("cophub.detection.classifiers.NudeNetClassifier", "list of dotted paths"),
    ([f"{__name__}.FakeImageClassifier", f"{__name__}.FakeImageClassifier"], "share a name"),
])
def test_bad_image_settings(settings, value, error):
    settings.COPHUB_IMAGE_CLASSIFIERS = value
    with pytest.raises(ImproperlyConfigured, match=error):
        classifiers.image_classifiers()


def test_bad_text_settings(settings):
    settings.COPHUB_TEXT_CLASSIFIERS = ["cophub.detection.text.find_indicators"]  # a function, not a classifier
    with pytest.raises(ImproperlyConfigured, match="without arguments"):
        classifiers.text_classifiers()


def test_label_score_range():
    with pytest.raises(ValueError):
        Label("x", 1.5)


def test_nudenet_missing_is_explained(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "nudenet", None)  # as if the extra were not installed
    with pytest.raises(ImproperlyConfigured, match=r"cophub\[nudity\]"):
        NudeNetClassifier()
    settings.COPHUB_IMAGE_CLASSIFIERS = ["cophub.detection.classifiers.NudeNetClassifier"]
    with pytest.raises(ImproperlyConfigured, match="AGPL"):
        classifiers.image_classifiers()


def test_nudenet_classes_map_to_sexual_content(monkeypatch):
    from PIL import Image

    seen = {}

    class Detector:
        def __init__(self, model_path=None):
            pass

        def detect(self, pixels):
            seen["shape"] = pixels.shape
            return [{"class": "FACE_FEMALE", "score": 0.99}, {"class": "BUTTOCKS_EXPOSED", "score": 0.4},
                    {"class": "FEMALE_BREAST_EXPOSED", "score": 0.8}, {"class": "MALE_BREAST_EXPOSED", "score": 0.95}]

    monkeypatch.setitem(sys.modules, "nudenet", types.SimpleNamespace(NudeDetector=Detector))
    buffer = io.BytesIO()
    Image.new("L", (40, 30)).save(buffer, "PNG")  # greyscale: decoded to 3 channels for NudeNet
    assert NudeNetClassifier().classify(buffer.getvalue()) == [Label("sexual_content", 0.8)]
    assert seen["shape"] == (30, 40, 3)
