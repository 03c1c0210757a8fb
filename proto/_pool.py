"""The private protobuf descriptor pool of stc's generated modules.

``tritonclient.grpc`` registers its own copy of the OIP v2 messages (package ``inference``)
in protobuf's default pool, and protobuf refuses a second file that defines the same symbols.
``stc.proto.generate`` therefore rewrites the generated ``*_pb2.py`` modules to register in
``POOL`` instead, so stc's server and tritonclient can live in one process (tests, benchmarks).
The wire format is unaffected: message and method names are the same.
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
