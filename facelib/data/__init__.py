"""Stage 1, data: FACECOM-layout folders, distortions, synthetic faces, face framing and alignment, and the
samplers that turn a folder into training batches. Imports nothing from a later stage."""
