"""The public pages: home, the child's three steps, the adult's page, the
danger button, the receipt, and tracking a report with its code and words.

Nothing here needs JavaScript or an account. The child's earlier answers
travel forward as hidden fields, so no session exists until a report is
filed; after that the session holds only what this browser may see (the
receipt once, the submission it tracked) and "forget" wipes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import wraps

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.core import is_ratelimited
from django_ratelimit.decorators import ratelimit
from django_ratelimit.exceptions import Ratelimited

from cophub.cases.services import PUBLIC_STEPS
from cophub.core.categories import AGE_BANDS, CATEGORIES
from cophub.orgs.models import UnitKind
from cophub.orgs.services import home_unit, schools_under, unit_by_code

from . import receipts, services
from .forms import (
    CHILD_STEPS, POPULAR_APPS, AddInformationForm, AdultForm, DangerMoreForm, RoutingForm, TrackForm, step_field_names,
)
from .models import Submission

FILES_FIELD = "files"
SESSION_RECEIPT = "intake.receipt"
SESSION_STATUS = "intake.status"
SESSION_DANGER = "intake.danger"
SESSION_FLASH = "intake.flash"
SESSION_DANGER_ADDED = "intake.danger-added"
# A second press of the danger button soon after the first (a double tap, a
# reload) adds to the same alert instead of raising another P1 case.
DANGER_REPEAT_WINDOW = timedelta(minutes=10)
SUBMIT_GROUP = "intake.submit"


# --- Rate limits --------------------------------------------------------------------
# Rates are read per request so that a changed setting applies at once.


def submit_rate(group, request) -> str:
    return settings.COPHUB_RATE_SUBMIT


def track_rate(group, request) -> str:
    return settings.COPHUB_RATE_TRACK


def submitted_code(group, request) -> str:
    """Counts guesses at one code, whether or not that code exists."""
    raw = request.POST.get("code", "")
    return receipts.normalise_code(raw) or "raw:" + "".join(raw.split()).upper()[:24]


def over_submit_limit(request) -> bool:
    return is_ratelimited(request, group=SUBMIT_GROUP, key="ip", rate=submit_rate, method="POST", increment=True)


# --- Which unit a page serves ----------------------------------------------------------


def public_page(view):
    """Serve the page for a school's own link (/s/<code>/…) or the hub's home unit."""

    @wraps(view)
    def wrapper(request, *args, unit_code: str | None = None, **kwargs):
        unit = unit_by_code(unit_code) if unit_code else home_unit()
        if unit_code and unit is None:
            raise Http404
        request.cophub_unit = unit
        request.cophub_unit_code = unit_code or ""
        return view(request, *args, **kwargs)

    return wrapper


def public_url(request, name: str) -> str:
    """A public URL that keeps the school's own link, if the visitor came by one."""
    code = getattr(request, "cophub_unit_code", "")
    return reverse(name, kwargs={"unit_code": code}) if code else reverse(name)


def routed_unit(request):
    """The unit named by the form's hidden code, else the page's own unit."""
    routing = RoutingForm(request.POST)
    unit = routing.cleaned_data["unit"] if routing.is_valid() else None
    return unit or request.cophub_unit


def hub_not_ready(request):
    return render(request, "core/error.html", {
        "title": _("This hub is not set up yet"),
        "message": _("Reports cannot be received here yet. If you need help now, call 111 (free, day and night) or 113 in an emergency."),
    }, status=503)


def upload_limits() -> dict:
    return {
        "max_files": settings.COPHUB_MAX_FILES_PER_SUBMISSION,
        "max_file_mb": settings.COPHUB_MAX_FILE_BYTES // (1024 * 1024),
    }


def remember_receipt(request, receipt, *, child: bool):
    """Keep the receipt for exactly one showing on the next page (POST-redirect-GET)."""
    request.session[SESSION_RECEIPT] = {
        "code": receipt.code,
        "phrase": receipt.phrase,
        "unit": receipt.submission.unit.name,
        "files": receipt.accepted_files,
        "refused": [item.message for item in receipt.refused],
        "child": child,
        "contact": receipt.submission.contact_ok,
    }
    return redirect(public_url(request, "intake:received"))


# --- Home -----------------------------------------------------------------------------------


@public_page
@require_GET
def home(request):
    return render(request, "intake/home.html")


# --- The child's three steps ----------------------------------------------------------------

CHILD_TEMPLATES = {1: "intake/child_what.html", 2: "intake/child_where.html", 3: "intake/child_more.html"}


def posted_step(request) -> int:
    try:
        step = int(request.POST.get("step", "1"))
    except ValueError:
        step = 1
    return min(max(step, 1), len(CHILD_STEPS))


def carried_answers(data, step: int) -> list[tuple[str, str]]:
    """Answers from the other steps, to travel on as hidden fields."""
    if data is None:
        return []
    names = [name for number in range(1, len(CHILD_STEPS) + 1) if number != step for name in step_field_names(number)]
    return [(name, data[name]) for name in names if data.get(name)]


def render_child_step(request, step: int, data=None, form=None):
    if form is None:
        initial = {name: data[name] for name in step_field_names(step) if data and name in data}
        form = CHILD_STEPS[step - 1](initial=initial)
    unit_code = (data or {}).get("unit") or request.cophub_unit_code or (request.cophub_unit.code if request.cophub_unit else "")
    return render(request, CHILD_TEMPLATES[step], {
        "step": step,
        "form": form,
        "carried": carried_answers(data, step),
        "unit_code": unit_code,
        "categories": CATEGORIES,
        "age_bands": AGE_BANDS,
        "popular_apps": POPULAR_APPS,
        "files_dropped": step == len(CHILD_STEPS) and bool(request.FILES.getlist(FILES_FIELD)),
        **upload_limits(),
    })


@public_page
@require_http_methods(["GET", "POST"])
def child(request):
    if request.method == "GET":
        return render_child_step(request, 1)
    step = posted_step(request)
    if "back" in request.POST:
        return render_child_step(request, max(step - 1, 1), request.POST)
    if step == len(CHILD_STEPS) and over_submit_limit(request):
        raise Ratelimited
    answers = []
    for number, form_class in enumerate(CHILD_STEPS[:step], start=1):
        form = form_class(request.POST)
        if not form.is_valid():
            return render_child_step(request, number, request.POST, form)
        answers.append(form)
    if step < len(CHILD_STEPS):
        return render_child_step(request, step + 1, request.POST)
    return file_child_report(request, *answers)


def file_child_report(request, what, where, more):
    unit = routed_unit(request)
    if unit is None:
        return hub_not_ready(request)
    receipt = services.receive(
        unit=unit,
        channel="web_child",
        reporter_kind="child",
        files=request.FILES.getlist(FILES_FIELD),
        category=what.cleaned_data["category"],
        age_band=what.cleaned_data["age_band"],
        where_url=where.cleaned_data["where_url"],
        where_app=where.cleaned_data["where_app"],
        where_unknown=where.cleaned_data["where_unknown"],
        description=more.cleaned_data["description"],
        **more.contact_fields(),
    )
    return remember_receipt(request, receipt, child=True)


# --- The adult's page ----------------------------------------------------------------------------


@public_page
@ratelimit(group=SUBMIT_GROUP, key="ip", rate=submit_rate, method="POST")
@require_http_methods(["GET", "POST"])
def adult(request):
    schools = schools_under(home_unit())
    page_unit = request.cophub_unit
    if request.method == "GET":
        initial = {"school": page_unit.pk} if page_unit and page_unit.kind == UnitKind.SCHOOL else {}
        form = AdultForm(schools=schools, initial=initial)
    else:
        files = request.FILES.getlist(FILES_FIELD)
        form = AdultForm(request.POST, schools=schools, has_files=bool(files))
        if form.is_valid():
            unit = routed_unit(request)
            if unit is None:
                return hub_not_ready(request)
            school = form.cleaned_data.get("school")
            if school is not None and school.is_within(unit):
                # The child's own school can act for its pupil; the units above
                # it still see the case.
                unit = school
            receipt = services.receive(unit=unit, channel="web_adult", files=files, **form.submission_fields())
            return remember_receipt(request, receipt, child=False)
    unit_code = request.POST.get("unit") or request.cophub_unit_code or (page_unit.code if page_unit else "")
    return render(request, "intake/adult.html", {
        "form": form,
        "unit_code": unit_code,
        "popular_apps": POPULAR_APPS,
        "files_dropped": request.method == "POST" and bool(request.FILES.getlist(FILES_FIELD)),
        **upload_limits(),
    })


# --- The receipt -----------------------------------------------------------------------------------


@public_page
@require_GET
def received(request):
    """Shows the code and the secret words once; a reload shows them no more."""
    receipt = request.session.pop(SESSION_RECEIPT, None)
    return render(request, "intake/received.html", {"receipt": receipt})


# --- The danger button -------------------------------------------------------------------------------


def recent_alert(request) -> dict | None:
    alert = request.session.get(SESSION_DANGER)
    if not alert:
        return None
    filed_at = datetime.fromisoformat(alert["at"])
    return alert if timezone.now() - filed_at < DANGER_REPEAT_WINDOW else None


def render_danger(request, *, receipt=None, alert=None, form=None, limited=False, status=200):
    return render(request, "intake/danger.html", {
        "receipt": receipt,
        "alert": alert,
        "more_form": form or (DangerMoreForm() if alert else None),
        "added": request.session.pop(SESSION_DANGER_ADDED, False) if request.method == "GET" else False,
        "limited": limited,
    }, status=status)


@public_page
@require_http_methods(["GET", "POST"])
def danger(request):
    """The numbers first, always; a POST also raises a P1 alert at once."""
    alert = recent_alert(request)
    if request.method == "GET" or alert:
        return render_danger(request, alert=alert)
    unit = request.cophub_unit
    if unit is None:
        return render_danger(request, limited=True, status=503)
    if over_submit_limit(request):
        return render_danger(request, limited=True, status=429)
    receipt = services.receive(unit=unit, channel="web_danger", danger=True, category="other", reporter_kind="unknown")
    alert = {"id": receipt.submission.pk, "code": receipt.code, "at": timezone.now().isoformat()}
    request.session[SESSION_DANGER] = alert
    return render_danger(request, receipt=receipt, alert=alert)


@public_page
@require_POST
def danger_more(request):
    alert = request.session.get(SESSION_DANGER)
    submission = Submission.objects.filter(pk=alert["id"]).first() if alert else None
    if submission is None:
        return redirect(public_url(request, "intake:danger"))
    form = DangerMoreForm(request.POST)
    if not form.is_valid():
        return render_danger(request, alert=alert, form=form)
    if over_submit_limit(request):
        raise Ratelimited
    services.add_information(submission, form.cleaned_data["text"])
    request.session[SESSION_DANGER_ADDED] = True
    return redirect(public_url(request, "intake:danger"))


# --- Tracking a report -----------------------------------------------------------------------------


@public_page
@ratelimit(group="intake.track", key="ip", rate=track_rate, method="POST")
@ratelimit(group="intake.track-code", key=submitted_code, rate=track_rate, method="POST")
@require_http_methods(["GET", "POST"])
def track(request):
    form = TrackForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        submission = services.lookup(form.cleaned_data["code"], form.cleaned_data["phrase"])
        if submission is not None:
            request.session.cycle_key()
            request.session[SESSION_STATUS] = submission.pk
            return redirect(public_url(request, "intake:status"))
        # The same words whatever was wrong: nobody learns whether a code exists.
        form.add_error(None, _("We couldn't find a report with that code and those secret words. Please check them and try again."))
    return render(request, "intake/track.html", {"form": form})


def tracked_submission(request) -> Submission | None:
    pk = request.session.get(SESSION_STATUS)
    return Submission.objects.select_related("unit").filter(pk=pk).first() if pk else None


@public_page
@require_http_methods(["GET", "POST"])
def status(request):
    submission = tracked_submission(request)
    if submission is None:
        return redirect(public_url(request, "intake:track"))
    form = AddInformationForm()
    if request.method == "POST":
        if over_submit_limit(request):
            raise Ratelimited
        form = AddInformationForm(request.POST)
        if form.is_valid():
            outcome = add_later(submission, form, request.FILES.getlist(FILES_FIELD))
            if outcome is not None:
                request.session[SESSION_FLASH] = outcome
                return redirect(public_url(request, "intake:status"))
    state = services.public_status(submission)
    return render(request, "intake/status.html", {
        "submission": submission,
        "state": state,
        "steps": public_steps(state.step if state else "received"),
        "form": form,
        "flash": request.session.pop(SESSION_FLASH, None) if request.method == "GET" else None,
        **upload_limits(),
    })


def add_later(submission, form, files) -> dict | None:
    """Add text or files; None when there was nothing at all to add."""
    addendum, refused, accepted = services.add_information(submission, form.cleaned_data["text"], files)
    if addendum is None and not refused:
        form.add_error("text", _("Please write something or choose a file to add."))
        return None
    return {"added": addendum is not None, "files": accepted, "refused": [item.message for item in refused]}


PUBLIC_STEP_LABELS = {
    "received": gettext_lazy("Received"),
    "working": gettext_lazy("Someone is looking into it"),
    "referred": gettext_lazy("Passed on to people who can act"),
    "done": gettext_lazy("Finished"),
}


def public_steps(current: str) -> list[dict]:
    """The progress line: every step before the current one is done."""
    position = PUBLIC_STEPS.index(current) if current in PUBLIC_STEPS else -1
    return [
        {"key": key, "label": PUBLIC_STEP_LABELS[key], "done": index < position, "current": index == position}
        for index, key in enumerate(PUBLIC_STEPS)
    ]


@public_page
@require_POST
def forget(request):
    """Leave: wipe this browser's session so the next person learns nothing."""
    request.session.flush()
    return redirect(public_url(request, "intake:home"))
