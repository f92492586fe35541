"""pydantic-ai's OpenAIResponsesModel with a tool, and with a structured output type, against
modelmix. Reads OPENAI_BASE_URL / OPENAI_API_KEY; the model name is the first argument."""

import json
import os
import sys

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider


class City(BaseModel):
    name: str
    population: int


provider = OpenAIProvider(
    base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"]
)
model = OpenAIResponsesModel(sys.argv[1], provider=provider)
agent = Agent(model, instructions="Answer with the help of your tools.")


@agent.tool_plain
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}, 21 C"


result = agent.run_sync("What is the weather in Paris?")
tools = [p.tool_name for m in result.all_messages() for p in m.parts if p.part_kind == "tool-call"]
structured = Agent(model, output_type=City).run_sync("Invent a city.").output
print(json.dumps({"final": result.output, "tools": tools, "city": structured.model_dump()}))
