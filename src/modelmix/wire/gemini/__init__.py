"""Google Gemini (``generateContent`` / ``streamGenerateContent``): upstream adapter, vocabulary
and the simulated vendor side (no client codec: clients do not speak Gemini to the gateway).
Importing the package loads none of them."""
