// @farskip/models: Hugging Face MoE families (config.json + safetensors), tokenizers, generation, conversion.
export {};
