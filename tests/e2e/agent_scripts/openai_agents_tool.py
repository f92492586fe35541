"""An OpenAI Agents SDK agent with a function tool, run against modelmix (Responses API).

Reads OPENAI_BASE_URL and OPENAI_API_KEY like any Agents SDK program; the model name is the
first argument; ``stream`` runs it streamed, ``typed`` also runs an agent with a structured
output type. Prints one JSON line.
"""

import asyncio
import json
import sys

from agents import Agent, Runner, function_tool, set_tracing_disabled
from pydantic import BaseModel

set_tracing_disabled(True)  # traces would go to OpenAI's servers


class City(BaseModel):
    name: str
    population: int


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}, 21 C"


async def main(model: str, stream: bool, typed: bool) -> None:
    agent = Agent(
        name="Weather assistant",
        instructions="Answer with the help of your tools.",
        model=model,
        tools=[get_weather],
    )
    question = "What is the weather in Paris?"
    if stream:
        run = Runner.run_streamed(agent, question)
        kinds = [event.type async for event in run.stream_events()]
        result = run
    else:
        result = await Runner.run(agent, question)
        kinds = []
    items = [item.type for item in result.new_items]
    responses = [r.response_id for r in result.raw_responses]
    # a second turn on the server-side conversation (previous_response_id)
    follow_up = await Runner.run(
        agent, "And tomorrow?", previous_response_id=result.last_response_id
    )
    city = None
    if typed:  # structured output: the SDK asks for it with text.format (json_schema)
        typed_agent = Agent(name="Typed", model=model, output_type=City)
        city = (await Runner.run(typed_agent, "Invent a city.")).final_output.model_dump()
    print(
        json.dumps(
            {
                "final": result.final_output,
                "items": items,
                "responses": responses,
                "events": sorted(set(kinds)),
                "follow_up": follow_up.final_output,
                "follow_up_responses": [r.response_id for r in follow_up.raw_responses],
                "city": city,
            }
        )
    )


asyncio.run(main(sys.argv[1], "stream" in sys.argv[2:], "typed" in sys.argv[2:]))
