from modelmix.routing.cascade import CascadeStrategy
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome
from modelmix.types import ChatRequest, ChatResponse

REQ = ChatRequest(model="c", messages=[{"role": "user", "content": "2+2?"}])


def answer(model, text):
    content = "" if text is None else f'{{"answer": "{text}"}}'
    return Outcome(model, response=ChatResponse(id="x", model=model, content=content))


def drive(strategy, answers, request=REQ):
    """Run the plan, answering each attempt from ``answers``; returns (called, final, decision)."""
    decision = {}
    plan = strategy.plan(request, needs_of(request), decision)
    called = []
    attempt = next(plan)
    try:
        while True:
            called.append(attempt.model)
            attempt = plan.send(answers[attempt.model](attempt))
    except StopIteration as stop:
        return called, stop.value, decision


def fixed(**texts):
    return {m: (lambda a, m=m, t=t: answer(m, t)) for m, t in texts.items()}


def test_agreeing_voters_are_accepted_without_escalation():
    s = CascadeStrategy("c", ["a", "b", "c"], ["big"])
    called, final, decision = drive(s, fixed(a="4", b="4", c="5", big="4"))
    assert called == ["a", "b"]
    assert final.model == "a"
    assert decision["escalated"] is False and decision["chosen"] == "a"


def test_disagreement_calls_third_voter_then_escalates():
    s = CascadeStrategy("c", ["a", "b", "c"], ["big"])
    called, final, decision = drive(s, fixed(a="4", b="5", c="6", big="7"))
    assert called == ["a", "b", "c", "big"]
    assert final.model == "big" and decision["escalated"] is True
    # Third voter breaks the tie: no escalation.
    called, final, _ = drive(s, fixed(a="4", b="5", c="5", big="7"))
    assert called == ["a", "b", "c"] and final.model == "b"


def test_refusals_and_errors_do_not_vote():
    s = CascadeStrategy("c", ["a", "b"], ["big"])
    answers = fixed(a=None, b="4", big="4")
    called, final, decision = drive(s, answers)
    assert called == ["a", "b", "big"] and final.model == "big"
    assert decision["steps"][0]["ok"] is False


def test_strong_failure_falls_back_to_best_supported_voter():
    s = CascadeStrategy("c", ["a", "b"], ["big"])
    answers = fixed(a="4", b="5")
    answers["big"] = lambda a: Outcome("big", error=None, response=None)
    called, final, decision = drive(s, answers)
    assert called == ["a", "b", "big"]
    assert final.model == "a" and decision["chosen"] == "a"


def test_streaming_goes_to_strong_tier():
    s = CascadeStrategy("c", ["a", "b"], ["big"])
    req = ChatRequest(model="c", messages=REQ.messages, stream=True)
    called, _final, decision = drive(s, fixed(a="4", b="4", big="4"), req)
    assert called == ["big"] and decision["stream"]


def test_judge_is_asked_with_its_own_request_before_escalating():
    s = CascadeStrategy("c", ["a", "b"], ["big"], judge="judge", judge_threshold=0.7)
    seen = {}

    def judge(attempt):
        seen["request"] = attempt.request
        return Outcome(
            "judge", response=ChatResponse(id="j", model="judge", content='{"score": 8}')
        )

    answers = fixed(a="4", b="5", big="9")
    answers["judge"] = judge
    called, final, decision = drive(s, answers)
    assert called == ["a", "b", "judge"] and final.model == "a"
    assert seen["request"].model == "judge"
    assert decision["steps"][-1] == {"model": "judge", "tier": "judge", "score": 0.8}


def test_full_budget_pressure_keeps_the_best_voter_answer_instead_of_escalating():
    s = CascadeStrategy("c", ["a", "b"], ["big"])
    answers = fixed(a="4", b="5", big="4")
    decision = {}
    plan = s.plan(REQ, needs_of(REQ, budget_pressure=1.0), decision)
    called = []
    attempt = next(plan)
    try:
        while True:
            called.append(attempt.model)
            attempt = plan.send(answers[attempt.model](attempt))
    except StopIteration as stop:
        final = stop.value
    assert called == ["a", "b"] and final.model in ("a", "b")
    assert decision["budget_degraded"] == {"pressure": 1.0, "skipped": "escalation"}
    # below 1 the cascade escalates as usual
    assert drive(s, answers)[0] == ["a", "b", "big"]
