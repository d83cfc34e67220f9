"""The DJ's side of Pika!: `python -m pika.dj` follows the DJ software's history and keeps the set live."""
