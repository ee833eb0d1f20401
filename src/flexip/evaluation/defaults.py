"""Default evaluation backbones and files. A leaf module without heavy imports, so that the command
line can show the defaults in its help without loading torch."""

#: CLIP for CLIP-T and CLIP-I (DreamBench convention).
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
#: DINO ViT-S/16 for DINO-I (DreamBench convention).
DEFAULT_DINO = "facebook/dino-vits16"
#: CLIP for CLIP-IQA. The CLIP-IQA paper used a ResNet-50 CLIP, which transformers does not provide;
#: the CLIP-T/CLIP-I model is used instead, so absolute values differ from that paper's.
DEFAULT_CLIP_IQA = DEFAULT_CLIP
#: The image encoder the LAION aesthetic head was trained on.
DEFAULT_AESTHETIC_CLIP = "openai/clip-vit-large-patch14"

AESTHETIC_HEAD_FILENAME = "sac+logos+ava1-l14-linearMSE.pth"
AESTHETIC_HEAD_URL = "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth"
AESTHETIC_HEAD_SHA256 = "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"

DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
