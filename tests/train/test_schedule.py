import pytest

from resnet.config import ScheduleConfig
from resnet.train.schedule import LRSchedule, evaluates, evaluations


def test_step_schedule_of_the_paper():
    s = LRSchedule(ScheduleConfig(), 0.1, 64000, depth=56)
    assert [s(t) for t in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_deep_networks_warm_up_until_the_error_falls_below_80_percent():
    cfg = ScheduleConfig(warmup_lr=0.01, warmup_until_error=0.8, warmup_min_depth=110)
    s = LRSchedule(cfg, 0.1, 64000, depth=110)
    assert s(0) == 0.01 and s(300) == 0.01
    assert not s.observe(300, 0.85)
    assert s.observe(400, 0.79)
    assert s(401) == 0.1
    assert s(399) == 0.01  # the steps done keep the learning rate they had: a metrics row reports it
    assert LRSchedule(cfg, 0.1, 64000, depth=56)(0) == 0.1  # shallower nets do not warm up


def test_warmup_state_survives_a_checkpoint():
    cfg = ScheduleConfig(warmup_lr=0.01)
    s = LRSchedule(cfg, 0.1, 1000, depth=110)
    s.observe(50, 0.5)
    t = LRSchedule(cfg, 0.1, 1000, depth=110)
    t.load_state_dict(s.state_dict())
    assert t(60) == 0.1


def test_warmup_ends_at_its_limit():
    s = LRSchedule(ScheduleConfig(warmup_lr=0.01, warmup_max_iters=100), 0.1, 1000, depth=110)
    assert s(99) == 0.01 and s(100) == 0.1


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_decays_with_linear_warmup(name):
    s = LRSchedule(ScheduleConfig(name=name, warmup=0.1, final_lr=0.0), 0.2, 100)
    assert s(0) == pytest.approx(0.02) and s(9) == pytest.approx(0.2)
    assert s(99) < 0.01
    assert all(s(t) >= s(t + 1) for t in range(10, 99))


def test_plateau_divides_when_the_error_stops_improving():
    s = LRSchedule(ScheduleConfig(name="plateau", patience=2, gamma=0.1), 0.1, 1000)
    # (a new best, a plateau) after each evaluation
    assert [s.observe_eval(e) for e in (0.5, 0.4, 0.45, 0.41)] == [
        (True, False),
        (True, False),
        (False, False),
        (False, True),
    ]
    assert s.best_eval == 0.4
    assert s(500) == pytest.approx(0.01)
    t = LRSchedule(ScheduleConfig(name="plateau", patience=2), 0.1, 1000)
    t.load_state_dict(s.state_dict())
    assert t(500) == pytest.approx(0.01)


@pytest.mark.parametrize("total", [1, 7, 12, 50])
@pytest.mark.parametrize("every", [1, 4, 5, 24])
def test_the_evaluations_left_are_those_the_loop_does(total, every):
    for after in range(total + 1):
        for end in range(after, total + 1):
            walked = sum(evaluates(step, every, total) for step in range(after + 1, end + 1))
            assert evaluations(after, end, every, total) == walked, (after, end)
