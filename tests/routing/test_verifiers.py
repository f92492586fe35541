import math

from modelmix.routing import verifiers as v
from modelmix.types import ChatRequest, ChatResponse


def resp(content, logprobs=None):
    return ChatResponse(id="x", model="m", content=content, logprobs=logprobs)


def test_extract_answer_forms():
    assert v.extract_answer('{"reasoning": "r", "answer": "540"}') == "540"
    assert v.extract_answer('Sure:\n```json\n{"reasoning": "x", "answer": 42}\n```') == "42"
    assert v.extract_answer('blah {"answer": "$12"} trailing') == "12"
    assert v.extract_answer('{"reasoning": "broken, "answer": "7"') == "7"
    assert v.extract_answer("no json here") is None
    assert v.extract_answer('{"answer": 3.0}') == "3"
    assert v.extract_answer(None) is None


def test_refusal_and_fields():
    assert v.is_refusal("")
    assert v.is_refusal("I'm sorry, but I can't help with that.")
    assert not v.is_refusal('{"answer": "1"}')
    assert v.has_fields('{"answer": "1", "reasoning": ""}', ["answer", "reasoning"])
    assert not v.has_fields('{"answer": "1"}', ["answer", "reasoning"])


def test_logprob_confidence():
    lp = {"content": [{"token": "a", "logprob": math.log(0.5)}, {"token": "b", "logprob": 0.0}]}
    assert v.logprob_confidence(resp("x", lp)) == __import__("pytest").approx(math.sqrt(0.5))
    assert v.logprob_confidence(resp("x")) is None


def test_check_response():
    assert v.check_response(resp('{"answer": "4"}')) == v.Verdict(True, "4")
    assert not v.check_response(resp("")).ok
    assert v.check_response(resp("the answer is four")).reason == "no extractable answer"
    assert not v.check_response(resp('{"answer": "4"}'), ("json",), ("answer", "reasoning")).ok
    low = {"content": [{"logprob": math.log(0.2)}]}
    verdict = v.check_response(resp('{"answer": "4"}', low), ("answer", "logprob"), min_logprob=0.5)
    assert not verdict.ok and verdict.answer == "4"
    assert v.check_response(None).reason == "no response"


def test_agreement_and_judge():
    assert v.agreement(["1", None, "2", "1"]) == ("1", 2)
    assert v.agreement([None]) == (None, 0)
    req = ChatRequest(model="r", messages=[{"role": "user", "content": "What is 2+2?"}])
    jr = v.judge_request(req, '{"answer": "4"}', "judge")
    assert jr.model == "judge" and "What is 2+2?" in jr.messages[0]["content"]
    assert v.judge_score(resp('{"score": 9}')) == 0.9
    assert v.judge_score(resp("Score: 3")) == 0.3
    assert v.judge_score(resp("")) is None
