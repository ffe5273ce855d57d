import pytest

from cophub.orgs.models import Unit, UnitKind
from cophub.orgs.permissions import has_role, roles_in
from cophub.conftest import make_user


@pytest.mark.django_db
def test_paths_follow_the_tree_and_moves(units):
    school_a, district, other = units["school_a"], units["district"], units["other_district"]
    assert school_a.path == f"{units['province'].path}{district.pk}/{school_a.pk}/"
    assert school_a.is_within(district) and not school_a.is_within(other)
    district.parent = None
    district.save()
    school_a.refresh_from_db()
    assert school_a.path == f"/{district.pk}/{school_a.pk}/"


@pytest.mark.django_db
def test_roles_reach_down_not_up_or_sideways(units):
    user = make_user("h", "handler", units["district"])
    assert roles_in(user, units["school_a"]) == {"handler"}
    assert has_role(user, ["handler"], units["district"])
    assert not has_role(user, ["handler"], units["province"])
    assert not has_role(user, ["handler"], units["school_c"])
    user.is_active = False
    assert roles_in(user, units["school_a"]) == set()


@pytest.mark.django_db
def test_unit_cannot_parent_itself(units):
    school = units["school_b"]
    school.parent = school
    with pytest.raises(ValueError):
        school.save()
