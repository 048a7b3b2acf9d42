"""Special tokens shared by the tokenizer, the tasks and the model."""

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
REGION = "<region>"  # filled by the region prompt encoder's soft tokens
BOX = "<box>"  # spatial trigger: the spatial decoder regresses a box from its hidden state
POINT = "<point>"  # spatial trigger for a point
SEP = "<sep>"  # separates prompt from answer in the tiny model's text
SCALAR_TOKENS = [REGION, BOX, POINT, SEP]  # added to every tokenizer (absorbing spaces)
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, *SCALAR_TOKENS]  # the tiny tokenizer's

# Textual spatial format (Shikra / Qwen-VL style): integers in [0, COORD_BINS - 1]
# relative to the image size, written as "[x1,y1,x2,y2]" or "[x,y]".
COORD_BINS = 1000
