class AnthropicWire:
    pass
