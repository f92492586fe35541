class GeminiWire:
    pass
