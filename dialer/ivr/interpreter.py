"""One call's walk through a flow: a state machine fed with what the customer pressed.

Pure: the AGI session plays the prompts an action names, collects the keys, and feeds
them back with the time (`None` digits = the timeout passed with nothing pressed). Each
answer is handed out as soon as it is known, so a customer who hangs up half-way
leaves the answers given so far (the survey is then `partial`).

    survey = Survey(flow)
    action = survey.begin()                 # Ask(...) or End(...)
    action = survey.press("4", at=now)      # after an Ask
    survey.hung_up()                        # the channel went away
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dialer.ivr.flow import Flow, HangupNode, MessageNode, QuestionNode, TransferNode

# A flow that passes `check_flow` cannot loop through message nodes, but a flow built
# in code might: stop rather than spin.
MAX_STEPS_WITHOUT_INPUT = 100


class SurveyStatus(str, enum.Enum):
    running = "running"
    completed = "completed"  # reached a hangup node
    transferred = "transferred"  # reached a transfer node
    opted_out = "opted_out"  # pressed the opt-out key
    partial = "partial"  # hung up (or the call broke) before an end


class AnswerStatus(str, enum.Enum):
    answered = "answered"
    timeout = "timeout"  # nothing pressed, retries used up
    invalid = "invalid"  # only wrong keys pressed, retries used up


@dataclass(frozen=True)
class Answer:
    question: str
    value: str | None
    status: AnswerStatus
    tries: int
    digits: str
    """What was pressed on the last try ('' for a timeout)."""
    at: float


@dataclass(frozen=True)
class Ask:
    """Play `prompts` in order, then wait `timeout` seconds for up to `max_digits` keys."""

    question: str
    prompts: tuple[str, ...]
    timeout: float
    max_digits: int
    answer: Answer | None = None
    """The answer this input completed (to the previous question), if any."""


@dataclass(frozen=True)
class End:
    status: SurveyStatus
    prompts: tuple[str, ...]
    queue: str | None = None
    answer: Answer | None = None


Action = Ask | End


class FlowError(RuntimeError):
    """The flow cannot go on (a reference to a missing node): the survey ends as partial."""


@dataclass
class Survey:
    flow: Flow
    status: SurveyStatus = SurveyStatus.running
    answers: list[Answer] = field(default_factory=list)
    node: str | None = None
    tries: int = 0
    opted_out: bool = False

    def begin(self) -> Action:
        return self._go(self.flow.start, ())

    def press(self, digits: str | None, at: float) -> Action:
        """Feed what the customer pressed for the question asked last."""
        question = self._question()
        digits = digits or ""
        opt_out = self.flow.opt_out
        if opt_out is not None and digits == opt_out.key:
            self.opted_out = True
            return self._end(SurveyStatus.opted_out, _say(opt_out.say), None, None)
        self.tries += 1
        value = question.answer.accepts(digits) if digits else None
        if value is not None:
            answer = self._record(AnswerStatus.answered, value, digits, at)
            return self._go(question.when.get(value, question.next), (), answer)
        if self.tries <= question.retries:
            scolding = self.flow.invalid if digits else self.flow.no_input
            return self._ask(self.node, question, _say(scolding), None)
        status = AnswerStatus.invalid if digits else AnswerStatus.timeout
        answer = self._record(status, None, digits, at)
        return self._go(question.no_answer or question.next, _say(self.flow.invalid if digits else None), answer)

    def hung_up(self) -> None:
        if self.status is SurveyStatus.running:
            self.status = SurveyStatus.partial

    # -- internals ------------------------------------------------------------------

    def _question(self) -> QuestionNode:
        node = self.flow.nodes.get(self.node or "")
        if self.status is not SurveyStatus.running or not isinstance(node, QuestionNode):
            raise RuntimeError("press() without a question waiting for input")
        return node

    def _record(self, status: AnswerStatus, value: str | None, digits: str, at: float) -> Answer:
        assert self.node is not None
        answer = Answer(self.node, value, status, self.tries, digits, at)
        self.answers.append(answer)
        return answer

    def _go(self, node_id: str | None, prompts: tuple[str, ...], answer: Answer | None = None) -> Action:
        for _ in range(MAX_STEPS_WITHOUT_INPUT):
            node = self.flow.nodes.get(node_id or "")
            if node is None:
                self.status = SurveyStatus.partial
                raise FlowError(f"flow {self.flow.name!r}: no node {node_id!r}")
            self.node = node_id
            match node:
                case QuestionNode():
                    self.tries = 0
                    return self._ask(node_id, node, prompts, answer)
                case MessageNode():
                    prompts += (node.say,)
                    node_id = node.next
                case TransferNode():
                    return self._end(SurveyStatus.transferred, prompts + _say(node.say), node.queue, answer)
                case HangupNode():
                    return self._end(SurveyStatus.completed, prompts + _say(node.say), None, answer)
        self.status = SurveyStatus.partial
        raise FlowError(f"flow {self.flow.name!r}: more than {MAX_STEPS_WITHOUT_INPUT} nodes without a question")

    def _ask(self, node_id: str | None, node: QuestionNode, prompts: tuple[str, ...], answer: Answer | None) -> Ask:
        assert node_id is not None
        return Ask(node_id, prompts + (node.say,), node.timeout, node.answer.max_digits, answer)

    def _end(self, status: SurveyStatus, prompts: tuple[str, ...], queue: str | None, answer: Answer | None) -> End:
        self.status = status
        return End(status, prompts, queue, answer)


def _say(prompt: str | None) -> tuple[str, ...]:
    return () if prompt is None else (prompt,)
