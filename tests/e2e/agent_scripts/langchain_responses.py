"""LangChain's ChatOpenAI on the Responses API (use_responses_api=True) with a tool, against
modelmix. Reads OPENAI_BASE_URL / OPENAI_API_KEY; the model name is the first argument."""

import json
import sys

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}, 21 C"


llm = ChatOpenAI(model=sys.argv[1], use_responses_api=True, max_retries=0)
with_tools = llm.bind_tools([get_weather])
question = HumanMessage("What is the weather in Paris?")
asked = with_tools.invoke([question])
call = asked.tool_calls[0]
answer = get_weather.invoke(call)
final = with_tools.invoke([question, asked, answer])
streamed = "".join(chunk.text for chunk in llm.stream("What is 6*7?"))
print(
    json.dumps(
        {"call": call["name"], "args": call["args"], "final": final.text, "streamed": streamed}
    )
)
