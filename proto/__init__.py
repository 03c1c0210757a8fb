"""stc.proto: OIP v2 and stc service .proto sources and generated Python code."""
