/** `loramix/profiles`: token-frequency profiles of a dataset (SPEC §2). */
export {
  denseCounts,
  PROFILE_SIDES,
  type Profile,
  type ProfiledRecord,
  type ProfileJson,
  type ProfileOptions,
  type ProfilePosition,
  type ProfileSide,
  profileFromJson,
  profileRecords,
  profileText,
  profileToJson,
} from "./profile.js";
export { type DatasetProfile, profileDataset } from "./profileDataset.js";
